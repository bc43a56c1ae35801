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


def bootstrap_w1_null(u: np.ndarray, v: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """W1 between two groups resampled from the pooled values of ``u`` and ``v`` (SMILE's null).

    Equals ``wasserstein_1d(draws[:, :n], draws[:, n:])`` with ``draws = pool[rng.integers(0,
    2n, (B, 2n))]``, pool = concat(u, v), n = len(u) = len(v), for the same ``rng`` state. Only
    the pool is sorted as floats: the draws are sorted as ranks into it (small integers), which
    is faster and keeps the cost flat when ``torch.set_flush_denormal(True)`` is on (with it,
    NumPy's float sort of such draws ran 8x slower on EfficientNet embeddings).

    Args:
        u, v: (n,) vectors of equal length; n_bootstrap: B; rng: the generator to draw from.

    Returns:
        (B,) distances.
    """
    u, v = np.asarray(u), np.asarray(v)
    if u.ndim != 1 or u.shape != v.shape:
        raise ValueError(f"u and v must be 1-D of equal length, got shapes {u.shape} and {v.shape}")
    pool = np.concatenate([u, v])
    size = len(u)
    order = np.argsort(pool, kind="stable")
    rank = np.empty(len(pool), dtype=np.int16 if len(pool) <= np.iinfo(np.int16).max else np.int64)
    rank[order] = np.arange(len(pool))
    ranks = rank[rng.integers(0, len(pool), (n_bootstrap, 2 * size))]
    ordered = pool[order]
    first = ordered[np.sort(ranks[:, :size], axis=1)]
    second = ordered[np.sort(ranks[:, size:], axis=1)]
    return np.abs(first - second).mean(axis=1)


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
