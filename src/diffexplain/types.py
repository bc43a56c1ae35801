"""Core result types: frozen dataclasses saved as JSON + safetensors (never pickle)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

_ARRAY_FIELDS = ("values", "stderr", "pvalues")


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Attributions of one output to named features (the words of a prompt).

    Attributes:
        method: explainer name ("shapley", "permutation", "kernelshap", "lime", "smile").
        features: feature names, shape (d,).
        values: raw attributions, float32, shape (d,). For Shapley methods they sum to
            ``full_value - base_value``.
        base_value: value of the empty coalition (Shapley) or the surrogate's intercept.
        full_value: value of the full coalition.
        stderr: per-feature standard error, shape (d,), or None.
        pvalues: per-feature p-values, shape (d,), or None where the method defines none.
        n_generations: images generated for this explanation (coalitions x seeds).
        n_cached: of those, how many came from the cache instead of the model.
        info: method-specific scalars and small lists (fidelity R^2, budget, kernel width...).
        settings: every argument that shaped the result (seeds, sampler, embedder, similarity).
        metadata: versions, model fingerprint, prompt.
    """

    method: str
    features: tuple[str, ...]
    values: np.ndarray
    base_value: float
    full_value: float
    stderr: Optional[np.ndarray] = None
    pvalues: Optional[np.ndarray] = None
    n_generations: int = 0
    n_cached: int = 0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.shape != (len(self.features),):
            raise ValueError(f"values must have shape ({len(self.features)},), got {values.shape}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "features", tuple(self.features))
        for name in ("stderr", "pvalues"):
            array = getattr(self, name)
            if array is not None:
                array = np.asarray(array, dtype=np.float32)
                if array.shape != values.shape:
                    raise ValueError(f"{name} must have shape {values.shape}, got {array.shape}")
                object.__setattr__(self, name, array)

    def normalised(self) -> np.ndarray:
        """Values divided by their sum (seed 002's form); all zeros if the sum is zero."""
        total = float(self.values.sum())
        return self.values / total if total != 0 else np.zeros_like(self.values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (arrays as lists)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["features"] = list(self.features)
        for name in _ARRAY_FIELDS:
            out[name] = None if out[name] is None else [float(v) for v in out[name]]
        out["normalised"] = [float(v) for v in self.normalised()]
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``explanation.json`` and ``explanation.safetensors`` (exact float32 arrays)."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "explanation.json").write_text(json.dumps(self.to_dict(), indent=2, default=_jsonable) + "\n")
        save_file({n: getattr(self, n) for n in _ARRAY_FIELDS if getattr(self, n) is not None},
                  str(directory / "explanation.safetensors"))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Explanation":
        from safetensors.numpy import load_file

        directory = Path(directory)
        data = json.loads((directory / "explanation.json").read_text())
        arrays = load_file(str(directory / "explanation.safetensors"))
        data.pop("normalised", None)
        for name in _ARRAY_FIELDS:
            data[name] = arrays.get(name)
        data["features"] = tuple(data["features"])
        return cls(**data)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
