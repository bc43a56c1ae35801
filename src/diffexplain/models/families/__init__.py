"""The model families diffexplain explains: one module each, registered by pipeline class.

Adding a family is one module here (a ``Family`` subclass decorated with ``register``, imported
below) and one row in the conformance matrix; ``docs/models.md`` shows how.
"""

from __future__ import annotations

# isort: skip_file
# importing a family's module registers it; the order is the order users read them in (lookup walks
# the pipeline's class hierarchy, so it does not depend on it). Paint-by-Example registers its loader.
from . import sdxl, sd3, flux, pixart, sana, stable_diffusion, paint_by_example  # noqa: F401
from .base import (
    FAMILIES,
    FOLDER_LOADERS,
    LAYOUTS,
    Family,
    conditional_rows,
    family_of,
    family_of_denoiser,
    find_cross_attention,
    find_family,
    guided_layout,
    layout_when_guided,
    register,
    supported,
)

__all__ = ["FAMILIES", "FOLDER_LOADERS", "LAYOUTS", "Family", "conditional_rows", "family_of", "family_of_denoiser",
           "find_cross_attention", "find_family", "guided_layout", "layout_when_guided", "register", "supported"]
