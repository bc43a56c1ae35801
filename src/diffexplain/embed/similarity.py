"""Similarities between embedding vectors (larger = more alike)."""

from __future__ import annotations

import numpy as np

SIMILARITIES = ("cosine", "wasserstein", "neg_l2")


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1-D Wasserstein distance between the values of vectors taken as empirical distributions.

    Equals ``scipy.stats.wasserstein_distance(u[i], v[i])`` row by row when both rows have the
    same length: the mean absolute difference of the sorted values. It ignores which dimension
    changed (as in SMILE).

    Args:
        u, v: (..., E) arrays, broadcastable.

    Returns:
        (...) distances.
    """
    return np.abs(np.sort(u, axis=-1) - np.sort(v, axis=-1)).mean(axis=-1)


def pairwise_similarity(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """Similarity of matching rows of ``a`` and ``b`` (shapes (..., E)); returns shape (...).

    kind: "cosine"; "wasserstein" = 1 - W1 of the value distributions; "neg_l2" = -||a - b||.
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if kind == "cosine":
        norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
        return (a * b).sum(axis=-1) / np.maximum(norms, 1e-12)
    if kind == "wasserstein":
        return 1.0 - wasserstein_1d(a, b)
    return -np.linalg.norm(a - b, axis=-1)
