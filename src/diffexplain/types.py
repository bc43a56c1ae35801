"""Core result types: frozen dataclasses saved as JSON + safetensors (never pickle)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._files import read_pair, write_pair

_ARRAY_FIELDS = ("values", "stderr", "pvalues")


@dataclasses.dataclass(frozen=True, eq=False)
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
        coalition_keys: the generation-cache key of each coalition's image per seed, (n, K), or
            None: ``images(cache)`` reads them back, the same for a fresh and a loaded explanation.
    """

    method: str
    features: tuple[str, ...]
    values: np.ndarray
    base_value: float
    full_value: float
    stderr: np.ndarray | None = None
    pvalues: np.ndarray | None = None
    n_generations: int = 0
    n_cached: int = 0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    coalitions: np.ndarray | None = None
    coalition_texts: tuple[str, ...] | None = None
    coalition_keys: tuple[tuple[str, ...], ...] | None = None

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
        if self.coalition_keys is not None:
            keys = tuple(tuple(str(k) for k in row) for row in self.coalition_keys)
            if self.coalitions is None or len(keys) != len(self.coalitions) or len({len(r) for r in keys}) > 1:
                raise ValueError("coalition_keys must have one row of keys (one per seed) per coalition")
            object.__setattr__(self, "coalition_keys", keys)

    def images(self, cache: Any, rows: Sequence[int] | None = None) -> np.ndarray:
        """The images of the evaluated coalitions, read from a generation cache by their keys:
        uint8 (n, K, H, W, 3). A loaded explanation reads them exactly as the fresh one did.

        Args:
            cache: the ``GenerationCache`` the explanation was computed with (or a copy of it).
            rows: which coalitions (indices into ``coalitions``); default all.

        Raises:
            ValueError: when the explanation records no keys, or the cache lacks some of them.
        """
        if self.coalition_keys is None:
            raise ValueError("this explanation records no coalition keys (made by an explainer on a plain game)")
        chosen = range(len(self.coalition_keys)) if rows is None else [int(r) for r in rows]
        keys = [self.coalition_keys[r] for r in chosen]
        found = cache.get_images([k for row in keys for k in row])
        missing = sum(k not in found for row in keys for k in row)
        if missing:
            raise ValueError(f"{missing} of the explanation's images are not in this cache (another cache, or "
                             "an embeddings-only one); explain again with the cache to regenerate them")
        return np.stack([[found[k] for k in row] for row in keys])

    def __eq__(self, other: object) -> bool:
        """Equal when every field is (arrays exactly): a loaded explanation equals the one saved."""
        if not isinstance(other, Explanation):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True, default=_jsonable) == \
            json.dumps(other.to_dict(), sort_keys=True, default=_jsonable)

    # unhashable: it holds mutable dicts
    __hash__ = None  # type: ignore[assignment]

    # -- views (``diffexplain.plots``) ----------------------------------------------------------
    def plot(self, *, ax: Any = None, title: str | None = None) -> Any:
        """Bars of the words' values with standard errors: a matplotlib ``Figure`` (no pyplot)."""
        from .plots import bar

        return bar(self, ax=ax, title=title)

    def _repr_html_(self) -> str:
        from .plots import explanation_html

        return explanation_html(self)

    def to_shap(self) -> Any:
        """A ``shap.Explanation`` (shap's ``bar``, ``waterfall`` and ``text`` plots take it): values,
        base value, the words as data and feature names.

        Raises:
            ImportError: when shap is not installed (``pip install shap``).
        """
        try:
            import shap
        except ImportError as error:
            raise ImportError("to_shap needs shap: pip install shap") from error
        return shap.Explanation(values=np.asarray(self.values, dtype=np.float64), base_values=float(self.base_value),
                                data=np.array(self.features, dtype=object), feature_names=list(self.features))

    def normalised(self) -> np.ndarray:
        """Values divided by their sum (``metrics.sum_to_one``); all zeros if the sum is zero."""
        from .metrics.functional import sum_to_one

        return sum_to_one(self.values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (arrays as lists)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["features"] = list(self.features)
        out["coalitions"] = None if self.coalitions is None else self.coalitions.astype(int).tolist()
        out["coalition_texts"] = None if self.coalition_texts is None else list(self.coalition_texts)
        out["coalition_keys"] = None if self.coalition_keys is None else [list(r) for r in self.coalition_keys]
        for name in _ARRAY_FIELDS:
            out[name] = None if out[name] is None else [float(v) for v in out[name]]
        out["normalised"] = [float(v) for v in self.normalised()]
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``explanation.json`` and ``explanation.safetensors`` (exact float32 arrays)."""
        from safetensors.numpy import save_file

        arrays = {n: getattr(self, n) for n in _ARRAY_FIELDS if getattr(self, n) is not None}
        return write_pair(directory, "explanation", self.to_dict(), arrays, save_file, default=_jsonable)

    @classmethod
    def load(cls, directory: str | Path) -> Explanation:
        from safetensors.numpy import load_file

        data, arrays = read_pair(directory, "explanation", load_file)
        data.pop("normalised", None)
        for name in _ARRAY_FIELDS:
            data[name] = arrays.get(name)
        data["features"] = tuple(data["features"])
        data.pop("game", None)  # written by versions before explanations were plain data
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class WordStats:
    """One word's attribution across the explanations it appears in: the share of each
    explanation's total absolute attribution it gets (signed), averaged."""

    word: str
    mean: float
    std: float
    count: int


@dataclasses.dataclass(frozen=True)
class Explanations:
    """A batch of explanations (an audit's prompts) with an optional group per explanation; slices
    and cohorts are batches too (as shap's ``Explanation.cohorts``).

    Attributes:
        items: the explanations.
        groups: a group name or None per explanation (default all None).
    """

    items: tuple[Explanation, ...]
    groups: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        items = tuple(self.items)
        groups = tuple(self.groups) if self.groups else (None,) * len(items)
        if len(groups) != len(items):
            raise ValueError(f"groups must have one entry per explanation ({len(items)}), got {len(groups)}")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "groups", groups)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self.items)

    def __getitem__(self, index: int | slice) -> Explanation | Explanations:
        if isinstance(index, slice):
            return Explanations(self.items[index], self.groups[index])
        return self.items[index]

    def cohorts(self, by: Callable[[Explanation], str | None] | None = None) -> dict[str, Explanations]:
        """Sub-batches by group (default: the ``groups`` given, in first-seen order; explanations
        without one are left out), or by ``by(explanation)``."""
        labels = self.groups if by is None else tuple(by(e) for e in self.items)
        out: dict[str, Explanations] = {}
        for name in dict.fromkeys(label for label in labels if label is not None):
            chosen = [i for i, label in enumerate(labels) if label == name]
            out[name] = Explanations(tuple(self.items[i] for i in chosen), tuple(self.groups[i] for i in chosen))
        return out

    def word_shares(self) -> dict[str, list[float]]:
        """Every word's signed shares of its explanations' total |attribution| (lower-cased; one
        entry per occurrence)."""
        pooled: dict[str, list[float]] = {}
        for explanation in self.items:
            values = np.asarray(explanation.values, dtype=np.float64)
            total = float(np.abs(values).sum()) or 1.0
            for word, value in zip(explanation.features, values):
                pooled.setdefault(word.lower(), []).append(float(value) / total)
        return pooled

    def word_stats(self) -> tuple[WordStats, ...]:
        """``WordStats`` of every word, largest mean share first."""
        stats = [WordStats(word, float(np.mean(v)), float(np.std(v)), len(v)) for word, v in self.word_shares().items()]
        return tuple(sorted(stats, key=lambda s: (-s.mean, s.word)))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
