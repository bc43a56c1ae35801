"""Resolve a ``--model`` argument to a diffusers pipeline: a built-in shapes name or a local path."""

from __future__ import annotations

import re
from pathlib import Path


def load_pipeline(model: str):
    """Load ``model``: ``"shapes"`` (or a built-in shapes pipeline name) or a path/hub id for
    ``DiffusionPipeline.from_pretrained``. Hub ids work only if already in the local cache:
    diffexplain never downloads."""
    from . import shapes

    if model == "shapes":
        return shapes.load("text2image")
    if model in shapes.PIPELINES:
        return shapes.load(model)
    import torch
    from diffusers import DiffusionPipeline

    path = Path(model)
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", model) is not None and not path.is_absolute()
    if not path.exists() and not looks_like_hub_id:
        raise ValueError(
            f"model must be 'shapes', one of {shapes.PIPELINES}, a local pipeline directory or a hub id already "
            f"in the local cache; got {model!r} (no such directory)"
        )
    pipe = DiffusionPipeline.from_pretrained(model, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def is_shapes_pipeline(pipe) -> bool:
    """True for the built-in shapes models (their tokenizer knows only the world's vocabulary)."""
    from . import shapes

    name_or_path = str(getattr(pipe, "name_or_path", "") or pipe.config.get("_name_or_path", ""))
    return Path(name_or_path).resolve().parent == shapes.WEIGHTS_DIR.resolve()
