"""Core result types: frozen dataclasses saved as JSON + safetensors (never pickle)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Sequence

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
        coalitions: the coalitions the method evaluated, bool (n, d), in the order its ``info``
            lists per-coalition numbers (responses, weights, distances); None if not recorded.
        coalition_texts: the exact conditioning each coalition sent to the model, (n,), or None.
        game: the game that produced the explanation (not saved): with it, ``images`` reads the
            coalitions' images back from the generation cache. None after ``load``.
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
    coalitions: Optional[np.ndarray] = None
    coalition_texts: Optional[tuple[str, ...]] = None
    game: Any = dataclasses.field(default=None, compare=False, repr=False)

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
        if self.coalitions is not None:
            coalitions = np.asarray(self.coalitions, dtype=bool)
            if coalitions.ndim != 2 or coalitions.shape[1] != len(self.features):
                raise ValueError(f"coalitions must have shape (n, {len(self.features)}), got {coalitions.shape}")
            object.__setattr__(self, "coalitions", coalitions)
        if self.coalition_texts is not None:
            texts = tuple(self.coalition_texts)
            if self.coalitions is None or len(texts) != len(self.coalitions):
                raise ValueError("coalition_texts must have one text per coalition")
            object.__setattr__(self, "coalition_texts", texts)

    def images(self, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """The images of the evaluated coalitions, from the generation cache: uint8 (n, K, H, W, 3).

        Args:
            rows: which coalitions (indices into ``coalitions``); default all.
        """
        if self.game is None or self.coalitions is None:
            raise ValueError("images needs the game the explanation came from: this one was loaded from disk or "
                             "built without it; explain again with the same cache (no image is regenerated)")
        chosen = self.coalitions if rows is None else self.coalitions[np.asarray(rows, dtype=int)]
        return self.game.images(chosen)

    def normalised(self) -> np.ndarray:
        """Values divided by their sum (``metrics.sum_to_one``); all zeros if the sum is zero."""
        from .metrics.functional import sum_to_one

        return sum_to_one(self.values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (arrays as lists)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "game"}
        out["features"] = list(self.features)
        out["coalitions"] = None if self.coalitions is None else self.coalitions.astype(int).tolist()
        out["coalition_texts"] = None if self.coalition_texts is None else list(self.coalition_texts)
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
