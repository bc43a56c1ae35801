"""Similarities between embedding vectors (larger = more alike)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..names import SIMILARITIES


def wasserstein_1d(u: Any, v: Any) -> Any:
    """1-D Wasserstein distance between the values of vectors taken as empirical distributions.

    Equals ``scipy.stats.wasserstein_distance(u[i], v[i])`` row by row when both rows have the
    same length: the mean absolute difference of the sorted values. It ignores which dimension
    changed (as in SMILE).

    Args:
        u: (..., E) numpy array or torch tensor (a tensor keeps its gradient).
        v: the same, broadcastable against ``u``.

    Returns:
        (...) distances, of the inputs' type.
    """
    if isinstance(u, torch.Tensor) or isinstance(v, torch.Tensor):
        return (torch.sort(u, dim=-1).values - torch.sort(v, dim=-1).values).abs().mean(dim=-1)
    return np.abs(np.sort(u, axis=-1) - np.sort(v, axis=-1)).mean(axis=-1)


def bootstrap_w1_null(u: np.ndarray, v: np.ndarray, n_bootstrap: int, rng: np.random.Generator,
                      block: int = 256) -> np.ndarray:
    """W1 between two groups resampled from the pooled values of ``u`` and ``v`` (SMILE's null).

    For each pair, pool = sorted(concat(u, v)) of size 2n; a replicate draws 2n positions
    uniformly with replacement, the first n form one group and the rest the other, and its value
    is ``wasserstein_1d`` of the two groups. The positions ``rng.integers(0, 2n, (rows, 2n))``
    (drawn ``block`` rows at a time) are shared by all P pairs: each row is an exact bootstrap
    null of its own pair, and the whole batch costs one set of draws plus one matrix product,
    because for equal group sizes W1 = sum_k |F1(k) - F2(k)| * (pool[k+1] - pool[k]) / n with
    F1, F2 the groups' cumulative counts over the pool's sorted positions. For independent nulls
    (e.g. one per sampler seed) call once per independent set.

    Args:
        u: (n,) or (P, n) array.
        v: an array of u's shape.
        n_bootstrap: B, the number of resamples.
        rng: the generator to draw from.
        block: replicates drawn at a time (memory: about block * 2n * 32 bytes).

    Returns:
        (B,) distances for 1-D input, (P, B) for 2-D input.
    """
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if u.ndim not in (1, 2) or u.shape != v.shape:
        raise ValueError(f"u and v must be 1-D or 2-D of equal shape, got shapes {u.shape} and {v.shape}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    single = u.ndim == 1
    u, v = np.atleast_2d(u), np.atleast_2d(v)
    size = u.shape[1]
    pools = np.sort(np.concatenate([u, v], axis=1), axis=1)  # (P, 2n)
    gaps = np.diff(pools, axis=1).T  # (2n - 1, P)
    out = np.empty((len(pools), n_bootstrap))
    for start in range(0, n_bootstrap, block):
        rows = min(block, n_bootstrap - start)
        draws = rng.integers(0, 2 * size, (rows, 2 * size))
        draws += (np.arange(rows) * 2 * size)[:, None]
        # cumulative count difference between the two groups at every sorted position
        counts = np.bincount(draws[:, :size].ravel(), minlength=rows * 2 * size)
        counts -= np.bincount(draws[:, size:].ravel(), minlength=rows * 2 * size)
        cumulative = np.abs(np.cumsum(counts.reshape(rows, 2 * size), axis=1)[:, :-1]).astype(np.float64)
        out[:, start:start + rows] = (cumulative @ gaps).T / size
    return out[0] if single else out


def pairwise_similarity(a: Any, b: Any, kind: str) -> Any:
    """Similarity of matching rows of ``a`` and ``b`` (shapes (..., E), broadcastable); shape (...).

    The one definition used everywhere: numpy arrays give numpy (float64), torch tensors give
    tensors that keep their gradient (a differentiable similarity for gradient-based callers).

    kind: "cosine"; "wasserstein" = 1 - W1 of the value distributions; "neg_l2" = -||a - b||.
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")
    if not (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return pairwise_similarity(torch.from_numpy(a), torch.from_numpy(b), kind).numpy()
    if kind == "cosine":
        norms = a.norm(dim=-1) * b.norm(dim=-1)
        return (a * b).sum(dim=-1) / norms.clamp_min(1e-12)
    if kind == "wasserstein":
        return 1.0 - wasserstein_1d(a, b)
    return -(a - b).norm(dim=-1)
