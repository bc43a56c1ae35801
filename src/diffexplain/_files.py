"""Results on disk: a JSON file for structure and a safetensors file for arrays, never pickle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_pair(directory: str | Path, stem: str, meta: dict[str, Any], tensors: dict[str, Any],
               save: Callable[[dict[str, Any], str], None], default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``STEM.json`` (``meta``) and ``STEM.safetensors`` (``tensors``, by ``save``: the numpy
    or torch ``safetensors`` writer) in ``directory``, created if needed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(meta, indent=2, default=default) + "\n")
    save(tensors, str(directory / f"{stem}.safetensors"))
    return directory


def read_pair(directory: str | Path, stem: str, load: Callable[[str], dict[str, Any]]) \
        -> tuple[dict[str, Any], dict[str, Any]]:
    """(``STEM.json`` as a dict, ``STEM.safetensors`` by ``load``) from ``directory``."""
    directory = Path(directory)
    return json.loads((directory / f"{stem}.json").read_text()), load(str(directory / f"{stem}.safetensors"))
