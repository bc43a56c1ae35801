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
from typing import Any

from .families import FOLDER_LOADERS
from .families.paint_by_example import load_paint_by_example  # noqa: F401  (its home; imported from here too)

ENTRY_POINT_GROUP = "diffexplain.pipelines"


def registered_pipelines() -> dict[str, str]:
    """``{name: folder}`` over every installed plugin, in entry-point order (first name wins)."""
    names: dict[str, str] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        for name, folder in entry_point.load()().items():
            names.setdefault(name, str(folder))
    return names


def load_pipeline(model: str, *, dtype: Any = None) -> Any:
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
    absent = {}
    if path.exists():
        entries = check_pipeline_folder(path)
        loader = FOLDER_LOADERS.get(str(entries.get("_class_name")))
        if loader is not None:  # a pipeline diffusers can no longer load by itself (Paint-by-Example)
            return loader(path, dtype=dtype)
        # a component saved as [null, null] (SD3 without T5, no safety checker) is loaded as None;
        # diffusers asks for it to be passed explicitly
        absent = {name: None for name, value in entries.items()
                  if not name.startswith("_") and isinstance(value, list) and value == [None, None]}
    try:
        pipe = DiffusionPipeline.from_pretrained(model, dtype=dtype or torch.float32, local_files_only=True, **absent)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"could not load the pipeline {model!r}: {first}") from error
    cast_components(pipe, dtype or torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


LIBRARIES = ("diffusers", "transformers")


def check_pipeline_folder(path: Path) -> dict:
    """Read and check a pipeline folder's ``model_index.json`` before diffusers opens it.

    Returns:
        The parsed index.

    Raises:
        ValueError: "not a diffusers pipeline folder: <what is missing>" for a folder without the
            index, an index that is not JSON or names no known diffusers pipeline class, a component
            whose folder is absent, and a component from outside diffusers / transformers (custom
            code is never run).
    """
    import diffusers

    where = f"not a diffusers pipeline folder: {str(path)!r}"
    if not path.is_dir():
        raise ValueError(f"{where} is a file, not a folder")
    index = path / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{where} has no model_index.json")
    try:
        entries = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: its model_index.json is not JSON ({error})") from error
    if not isinstance(entries, dict):
        raise ValueError(f"{where}: its model_index.json is not a JSON object")
    class_name = entries.get("_class_name")
    if not isinstance(class_name, str) or not class_name:
        raise ValueError(f"{where}: its model_index.json names no pipeline class (_class_name)")
    if not hasattr(diffusers, class_name) and class_name not in FOLDER_LOADERS:
        raise ValueError(f"{where}: its pipeline class {class_name!r} is not a diffusers pipeline (custom pipeline "
                         "code is not run)")
    for name, value in entries.items():
        if name.startswith("_") or not isinstance(value, list) or value == [None, None]:
            continue  # pipeline settings (requires_safety_checker: false) and absent components
        if not (len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{where}: component {name!r} is {value!r} in model_index.json, not [library, class]")
        if value[0] not in LIBRARIES and not _diffusers_pipeline_module(value[0]):
            raise ValueError(f"{where}: component {name!r} comes from {value[0]!r}; only diffusers and transformers "
                             "components are loaded (custom code is not run)")
        if not (path / name).is_dir():
            raise ValueError(f"{where}: component {name!r} ({value[1]}) has no folder {name}/")
    return entries


def _diffusers_pipeline_module(name: str) -> bool:
    """Whether ``name`` is one of diffusers' own pipeline modules (an SD safety checker is saved as
    ``["stable_diffusion", "StableDiffusionSafetyChecker"]``)."""
    import importlib.util

    if not name.isidentifier():
        return False
    try:
        return importlib.util.find_spec(f"diffusers.pipelines.{name}") is not None
    except (ImportError, ValueError):
        return False


def cast_components(pipe: Any, dtype: Any) -> None:
    """Cast every module component whose floating-point weights loading left in another dtype
    (without ``accelerate``, diffusers keeps SD3's transformer in float32 under ``dtype=bfloat16``,
    and generation then fails on mixed dtypes)."""
    import torch

    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        if any(p.is_floating_point() and p.dtype != dtype for p in component.parameters()):
            component.to(dtype)
