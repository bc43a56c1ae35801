"""Resolve a ``--model`` argument to a diffusers pipeline: a built-in shapes name or a local path."""

from __future__ import annotations

import json
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
    index = path / "model_index.json"
    if index.is_file() and json.loads(index.read_text()).get("_class_name") == "PaintByExamplePipeline":
        return load_paint_by_example(path)
    pipe = DiffusionPipeline.from_pretrained(model, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_paint_by_example(path: str | Path):
    """Load a saved PaintByExamplePipeline component by component.

    diffusers 0.42 moved the pipeline under ``pipelines.deprecated`` and its ``model_index.json``
    entry for the image encoder no longer resolves (``["diffusers", "PaintByExampleImageEncoder"]``),
    so ``PaintByExamplePipeline.from_pretrained`` fails even on a folder it saved itself; each
    component's own ``from_pretrained`` still works.
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKL, PaintByExamplePipeline, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor

    path = Path(path)
    index = json.loads((path / "model_index.json").read_text())
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    common = dict(local_files_only=True)
    pipe = PaintByExamplePipeline(
        vae=AutoencoderKL.from_pretrained(path / "vae", dtype=torch.float32, **common),
        image_encoder=PaintByExampleImageEncoder.from_pretrained(path / "image_encoder", dtype=torch.float32, **common),
        unet=UNet2DConditionModel.from_pretrained(path / "unet", dtype=torch.float32, **common),
        scheduler=scheduler_cls.from_pretrained(path / "scheduler", **common),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor.from_pretrained(path / "feature_extractor", **common),
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def is_shapes_pipeline(pipe) -> bool:
    """True for the built-in shapes models (their tokenizer knows only the world's vocabulary)."""
    from . import shapes

    name_or_path = str(getattr(pipe, "name_or_path", "") or pipe.config.get("_name_or_path", ""))
    return Path(name_or_path).resolve().parent == shapes.WEIGHTS_DIR.resolve()
