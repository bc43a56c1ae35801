"""The model families diffexplain explains: one module each, registered by pipeline class.

Adding a family is one module here (a ``Family`` subclass decorated with ``register``, imported
below) and one row in the conformance matrix; ``docs/models.md`` shows how.
"""

from __future__ import annotations

# registration order is lookup order: SDXL before SD (an SDXL class is never an SD one, but keep
# the specific first), SD last
from . import flux, pixart, sana, sd3, sdxl, stable_diffusion  # noqa: F401  (registers each family)
from .base import (
           FAMILIES,
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

__all__ = ["FAMILIES", "LAYOUTS", "Family", "conditional_rows", "family_of", "family_of_denoiser",
           "find_cross_attention", "find_family", "guided_layout", "layout_when_guided", "register", "supported"]
