"""diffexplain: explain diffusion image models with measured trust.

The main entry points, imported lazily so ``import diffexplain`` stays light:

- ``TextToImageAdapter``: wraps a diffusers text-to-image pipeline you built.
- ``explain_prompt``: which words drive the image (shapley, permutation, kernelshap, lime, smile).
- ``AttentionRecorder``: per-word cross-attention heatmaps, as a context manager.
- ``GenerationCache``: the SQLite generation cache shared by explanations.
- ``Explanation``: the result type (JSON + safetensors).
"""

__version__ = "0.1.0"

_LAZY = {
    "TextToImageAdapter": ("diffexplain.models.adapter", "TextToImageAdapter"),
    "explain_prompt": ("diffexplain.explain.api", "explain_prompt"),
    "AttentionRecorder": ("diffexplain.attention.recorder", "AttentionRecorder"),
    "AttentionMaps": ("diffexplain.attention.maps", "AttentionMaps"),
    "GenerationCache": ("diffexplain.cache", "GenerationCache"),
    "Explanation": ("diffexplain.types", "Explanation"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'diffexplain' has no attribute {name!r}")
