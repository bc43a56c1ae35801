"""Resolve a ``--model`` argument to a diffusers pipeline: a registered name or a local path.

Names come from installed plugins: a distribution declares an entry point in the group
``diffexplain.pipelines`` whose object is a callable returning ``{name: folder}`` (the shapes
distribution registers ``shapes``, ``text2image``, ``instruct_pix2pix``, ``inpaint`` and
``paint_by_example``). diffexplain never downloads: hub ids work only from the local cache.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

ENTRY_POINT_GROUP = "diffexplain.pipelines"


def registered_pipelines() -> dict[str, str]:
    """``{name: folder}`` over every installed plugin, in entry-point order (first name wins)."""
    names: dict[str, str] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        for name, folder in entry_point.load()().items():
            names.setdefault(name, str(folder))
    return names


def load_pipeline(model: str, *, dtype=None):
    """Load ``model``: a registered name (``registered_pipelines``), a local pipeline folder, or a
    hub id already in the local cache, with ``DiffusionPipeline.from_pretrained``.

    Args:
        model: the name, folder or hub id.
        dtype: torch dtype of the weights (default float32).

    Returns:
        The pipeline on the CPU with its progress bar off.
    """
    import torch
    from diffusers import DiffusionPipeline

    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    registered = registered_pipelines()
    if model in registered:
        model = registered[model]
    path = Path(model)
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", model) is not None and not path.is_absolute()
    if not path.exists() and not looks_like_hub_id:
        raise ValueError(
            f"model must be a registered name {sorted(registered)}, a local pipeline directory or a hub id already "
            f"in the local cache; got {model!r} (no such directory)")
    index = path / "model_index.json"
    absent = {}
    if index.is_file():
        entries = json.loads(index.read_text())
        if entries.get("_class_name") == "PaintByExamplePipeline":
            return load_paint_by_example(path, dtype=dtype)
        # a component saved as [null, null] (SD3 without T5, no safety checker) is loaded as None;
        # diffusers asks for it to be passed explicitly
        absent = {name: None for name, value in entries.items()
                  if not name.startswith("_") and isinstance(value, list) and value == [None, None]}
    pipe = DiffusionPipeline.from_pretrained(model, dtype=dtype or torch.float32, local_files_only=True, **absent)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_paint_by_example(path: str | Path, *, dtype=None):
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
    common = dict(local_files_only=True)
    pipe = PaintByExamplePipeline(
        vae=AutoencoderKL.from_pretrained(path / "vae", dtype=dtype, **common),
        image_encoder=PaintByExampleImageEncoder.from_pretrained(path / "image_encoder", dtype=dtype, **common),
        unet=UNet2DConditionModel.from_pretrained(path / "unet", dtype=dtype, **common),
        scheduler=scheduler_cls.from_pretrained(path / "scheduler", **common),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor.from_pretrained(path / "feature_extractor", **common),
        requires_safety_checker=False,
    )
    pipe.register_to_config(_name_or_path=str(path))  # as from_pretrained does: defaults are read from there
    pipe.set_progress_bar_config(disable=True)
    return pipe
