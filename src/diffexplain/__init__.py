"""diffexplain: explain diffusion image models with measured trust.

The public face (imported on first use, so ``import diffexplain`` stays light; the
``TYPE_CHECKING`` imports below give IDEs and type checkers the real names):

- ``TextToImageAdapter``, ``EditAdapter``, ``PaintByExampleAdapter``: generate from a pipeline you built.
- ``load_pipeline``: a registered name or a local pipeline folder, offline.
- ``PromptExplainer`` / ``explain_prompt``: which words drive the image (shapley, permutation,
  kernelshap, lime, smile), under one frozen ``ExplainSettings``.
- ``DropWords``, ``EmptyEmbedding``, ``ReplaceWords``: the perturbations, as objects.
- ``AttentionRecorder`` / ``AttentionMaps``: per-word cross-attention heatmaps (a context manager).
- ``i2am_paint_by_example``: I2AM maps and IMACS for a reference-image model.
- ``GenerationCache``: the SQLite generation cache shared by explanations.
- ``Explanation`` / ``Explanations``: results as plain data (JSON + safetensors), one or a batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "TextToImageAdapter": ("diffexplain.models.adapter", "TextToImageAdapter"),
    "EditAdapter": ("diffexplain.models.edit_adapter", "EditAdapter"),
    "PaintByExampleAdapter": ("diffexplain.models.edit_adapter", "PaintByExampleAdapter"),
    "load_pipeline": ("diffexplain.models.loading", "load_pipeline"),
    "PromptExplainer": ("diffexplain.explain.api", "PromptExplainer"),
    "explain_prompt": ("diffexplain.explain.api", "explain_prompt"),
    "ExplainSettings": ("diffexplain.explain.settings", "ExplainSettings"),
    "DropWords": ("diffexplain.models.perturbations", "DropWords"),
    "EmptyEmbedding": ("diffexplain.models.perturbations", "EmptyEmbedding"),
    "ReplaceWords": ("diffexplain.models.perturbations", "ReplaceWords"),
    "AttentionRecorder": ("diffexplain.attention.recorder", "AttentionRecorder"),
    "AttentionMaps": ("diffexplain.attention.maps", "AttentionMaps"),
    "i2am_paint_by_example": ("diffexplain.image2image.i2am", "i2am_paint_by_example"),
    "GenerationCache": ("diffexplain.cache", "GenerationCache"),
    "Explanation": ("diffexplain.types", "Explanation"),
    "Explanations": ("diffexplain.types", "Explanations"),
}

if TYPE_CHECKING:
    from .attention.maps import AttentionMaps
    from .attention.recorder import AttentionRecorder
    from .cache import GenerationCache
    from .explain.api import PromptExplainer, explain_prompt
    from .explain.settings import ExplainSettings
    from .image2image.i2am import i2am_paint_by_example
    from .models.adapter import TextToImageAdapter
    from .models.edit_adapter import EditAdapter, PaintByExampleAdapter
    from .models.loading import load_pipeline
    from .models.perturbations import DropWords, EmptyEmbedding, ReplaceWords
    from .types import Explanation, Explanations

__all__ = [
    "__version__", "TextToImageAdapter", "EditAdapter", "PaintByExampleAdapter", "load_pipeline", "PromptExplainer",
    "explain_prompt", "ExplainSettings", "DropWords", "EmptyEmbedding", "ReplaceWords", "AttentionRecorder",
    "AttentionMaps", "i2am_paint_by_example", "GenerationCache", "Explanation", "Explanations",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'diffexplain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
