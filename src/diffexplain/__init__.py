"""diffexplain: explain diffusion image models with measured trust.

The public face (imported on first use, so ``import diffexplain`` stays light; the
``TYPE_CHECKING`` imports below give IDEs and type checkers the real names):

- ``TextToImageAdapter``, ``EditAdapter``, ``PaintByExampleAdapter``: generate from a pipeline you built.
- ``load_pipeline``: a registered name or a local pipeline folder, offline.
- ``PromptExplainer`` / ``explain_prompt``: which words drive the image (shapley, permutation,
  kernelshap, lime, smile).
- ``AttentionRecorder`` / ``AttentionMaps``: per-word cross-attention heatmaps (a context manager).
- ``i2am_paint_by_example``: I2AM maps and IMACS for a reference-image model.
- ``GenerationCache``: the SQLite generation cache shared by explanations.
- ``Explanation``: the result type (JSON + safetensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "TextToImageAdapter": ("diffexplain.models.adapter", "TextToImageAdapter"),
    "EditAdapter": ("diffexplain.models.edit_adapter", "EditAdapter"),
    "PaintByExampleAdapter": ("diffexplain.models.edit_adapter", "PaintByExampleAdapter"),
    "load_pipeline": ("diffexplain.models.loading", "load_pipeline"),
    "PromptExplainer": ("diffexplain.explain.api", "PromptExplainer"),
    "explain_prompt": ("diffexplain.explain.api", "explain_prompt"),
    "AttentionRecorder": ("diffexplain.attention.recorder", "AttentionRecorder"),
    "AttentionMaps": ("diffexplain.attention.maps", "AttentionMaps"),
    "i2am_paint_by_example": ("diffexplain.explain.i2am", "i2am_paint_by_example"),
    "GenerationCache": ("diffexplain.cache", "GenerationCache"),
    "Explanation": ("diffexplain.types", "Explanation"),
}

if TYPE_CHECKING:
    from .attention.maps import AttentionMaps
    from .attention.recorder import AttentionRecorder
    from .cache import GenerationCache
    from .explain.api import PromptExplainer, explain_prompt
    from .explain.i2am import i2am_paint_by_example
    from .models.adapter import TextToImageAdapter
    from .models.edit_adapter import EditAdapter, PaintByExampleAdapter
    from .models.loading import load_pipeline
    from .types import Explanation

__all__ = [
    "__version__", "TextToImageAdapter", "EditAdapter", "PaintByExampleAdapter", "load_pipeline", "PromptExplainer",
    "explain_prompt", "AttentionRecorder", "AttentionMaps", "i2am_paint_by_example", "GenerationCache", "Explanation",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'diffexplain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
