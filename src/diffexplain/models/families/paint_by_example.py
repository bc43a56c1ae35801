"""Paint-by-Example: a reference image (one CLIP image token) instead of a prompt; explained by
I2AM, not by words, so it is no text family. What is particular to it: diffusers can no longer load
its folder by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import register_folder_loader


@register_folder_loader("PaintByExamplePipeline")
def load_paint_by_example(path: str | Path, *, dtype: Any = None) -> Any:
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
    dtype = dtype or torch.float32
    index = json.loads((path / "model_index.json").read_text())
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    common: dict[str, Any] = dict(local_files_only=True)
    pipe = PaintByExamplePipeline(
        vae=AutoencoderKL.from_pretrained(path / "vae", dtype=dtype, **common),
        image_encoder=PaintByExampleImageEncoder.from_pretrained(path / "image_encoder", dtype=dtype, **common),
        unet=UNet2DConditionModel.from_pretrained(path / "unet", dtype=dtype, **common),
        scheduler=scheduler_cls.from_pretrained(path / "scheduler", **common),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor.from_pretrained(path / "feature_extractor", **common),
        requires_safety_checker=False,
    )
    # as from_pretrained does: defaults are read from there (diffusers' lazy module hides these methods from mypy)
    pipe.register_to_config(_name_or_path=str(path))  # type: ignore[attr-defined]
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    return pipe
