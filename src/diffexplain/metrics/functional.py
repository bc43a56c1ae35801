"""Metrics for word attributions, as pure functions (docs/methods.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


ValueFunction = Callable[[np.ndarray], np.ndarray]  # a game: bool (n, d) coalitions -> values (n, K)


class Attributed(Protocol):
    """Anything with named features and their values (an ``Explanation``)."""

    features: Sequence[str]
    values: np.ndarray


def all_masks(d: int) -> np.ndarray:
    """Every coalition of d players, shape (2**d, d), row i = binary digits of i (player 0 = LSB)."""
    index = np.arange(2 ** d)[:, None]
    return ((index >> np.arange(d)[None, :]) & 1).astype(bool)


def weighted_r2(y: np.ndarray, prediction: np.ndarray, weights: np.ndarray) -> float:
    """R^2_w = 1 - sum w (y - yhat)^2 / sum w (y - mean_w(y))^2 (SMILE's fidelity of a surrogate)."""
    y, prediction, weights = (np.asarray(a, dtype=np.float64) for a in (y, prediction, weights))
    mean = np.average(y, weights=weights)
    denominator = np.sum(weights * (y - mean) ** 2)
    if denominator == 0:
        return 1.0 if np.allclose(y, prediction) else 0.0
    return float(1.0 - np.sum(weights * (y - prediction) ** 2) / denominator)


fidelity = weighted_r2


def _vector(x, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    return array


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same length, got {a.shape[0]} and {b.shape[0]}")


def sum_to_one(scores: ArrayLike) -> np.ndarray:
    """Scores divided by their sum (the form of Gupta & Kanoria's ground truth); zeros if they sum to zero."""
    scores = _vector(scores, "scores")
    total = scores.sum()
    return scores / total if total != 0 else np.zeros_like(scores)


def ranks(scores: ArrayLike) -> np.ndarray:
    """Rank of each score, 1 = largest; ties share the smallest rank ("min" method)."""
    scores = _vector(scores, "scores")
    return np.array([1 + int(np.sum(scores > s)) for s in scores])


def ranks_aligned(scores: ArrayLike, truth: ArrayLike, *, ties: str = "min") -> float:
    """Fraction of words whose rank under ``scores`` equals their rank under ``truth`` (Gupta & Kanoria,
    2024: *a cat's house* with truth (0.05, 0.45, 0.5) and Shapley values (0.13, 0.59, 0.28) gives 1/3).

    Args:
        scores: (d,) a method's attributions.
        truth: (d,) ground-truth importance.
        ties: "min" (tied words share the smallest rank, in both) or "range" (a word is aligned when
            its rank under ``scores``, ties broken by word order, lies in the block of ranks its tied
            group takes under ``truth``: ground truths with exact ties, such as several filler words
            worth 0, then ask for no order among the tied words).
    """
    scores, truth = _vector(scores, "scores"), _vector(truth, "truth")
    _same_length(scores, truth, "scores and truth")
    if ties == "min":
        return float(np.mean(ranks(scores) == ranks(truth)))
    if ties == "range":
        order = np.empty(len(scores), dtype=np.int64)
        order[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
        low = ranks(truth)
        high = np.array([int(np.sum(truth >= t)) for t in truth])
        return float(np.mean((order >= low) & (order <= high)))
    raise ValueError(f"ties must be 'min' or 'range', got {ties!r}")


def rmse_normalised(scores: ArrayLike, truth: ArrayLike, *, mean: bool = True) -> float:
    """RMSE between scores and truth after normalising both to sum to 1 (Gupta & Kanoria, 2024).

    Args:
        mean: True for the paper's formula, sqrt(sum of squared errors / N); False for the arithmetic
            of its tables, sqrt(sum of squared errors) (its *a cat's house* example: 0.2728).
    """
    scores, truth = _vector(scores, "scores"), _vector(truth, "truth")
    _same_length(scores, truth, "scores and truth")
    squared = (sum_to_one(scores) - sum_to_one(truth)) ** 2
    return float(np.sqrt(squared.mean() if mean else squared.sum()))


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    first, second = _vector(a, "a"), _vector(b, "b")
    _same_length(first, second, "a and b")

    def average_ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        ranked = np.empty(len(x))
        ranked[order] = np.arange(1, len(x) + 1)
        for value in np.unique(x):  # ties share their mean rank
            tied = x == value
            ranked[tied] = ranked[tied].mean()
        return ranked

    ra, rb = average_ranks(first), average_ranks(second)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, n_resamples: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over resamples of n units.

    Args:
        statistic: maps (n,) indices of a resample (drawn with replacement from range(n)) to a number.
        n: the number of units (tasks, prompts) resampled.

    Returns:
        (low, high); NaN resamples (a constant resample) are left out.
    """
    if n < 2 or n_resamples < 1 or not 0 < level < 1:
        raise ValueError(f"bootstrap needs n >= 2, n_resamples >= 1 and level in (0, 1), got {n}, {n_resamples}, "
                         f"{level}")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def frechet_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula of Heusel et
    al., NeurIPS 2017, on whatever features are given): |mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa Sb)^1/2).

    Args:
        a: (n, k) features; b: (m, k) features; n, m >= 2.
    """
    from scipy import linalg

    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1] or min(len(first), len(second)) < 2:
        raise ValueError(f"a and b must be (n >= 2, k) feature arrays of the same k, got {first.shape} and "
                         f"{second.shape}")
    mu = first.mean(0) - second.mean(0)
    sa, sb = np.atleast_2d(np.cov(first, rowvar=False)), np.atleast_2d(np.cov(second, rowvar=False))
    root = linalg.sqrtm(sa @ sb)
    root = np.real(root)  # sqrtm's imaginary part is round-off for PSD products
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(root))


def roc_auc(scores: ArrayLike, relevant: ArrayLike) -> float:
    """ROC-AUC of scores against binary relevance: P(score of a relevant word > an irrelevant one),
    ties counting one half. NaN when only one class is present."""
    scores = _vector(scores, "scores")
    relevant = np.asarray(relevant)
    _same_length(scores, relevant.astype(float), "scores and relevant")
    if not np.isin(relevant, (0, 1, True, False)).all():
        raise ValueError(f"relevant must be binary, got {np.unique(relevant)}")
    relevant = relevant.astype(bool)
    pos, neg = scores[relevant], scores[~relevant]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def precision_at_k(scores: ArrayLike, relevant: ArrayLike, k: int | None = None) -> float:
    """Fraction of relevant words among the k highest scores (k defaults to the number of
    relevant words, i.e. R-precision). Ties broken by word order."""
    scores = _vector(scores, "scores")
    relevant = np.asarray(relevant).astype(bool)
    _same_length(scores, relevant.astype(float), "scores and relevant")
    k = int(relevant.sum()) if k is None else k
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be in [1, {len(scores)}], got {k}")
    top = np.argsort(-scores, kind="stable")[:k]
    return float(relevant[top].mean())


def ruzicka_similarity(a: ArrayLike, b: ArrayLike) -> float:
    """Stability: sum min(|a_k|, |b_k|) / sum max(|a_k|, |b_k|), in [0, 1]; 1 if both are zero."""
    first, second = np.abs(_vector(a, "a")), np.abs(_vector(b, "b"))
    _same_length(first, second, "a and b")
    denominator = np.maximum(first, second).sum()
    return 1.0 if denominator == 0 else float(np.minimum(first, second).sum() / denominator)


def consistency(runs: ArrayLike) -> dict[str, np.ndarray]:
    """Per-word mean, std (ddof=1) and coefficient of variation (std / |mean|) over R runs.

    Args:
        runs: (R, d) attributions of the same prompt with different seeds, R >= 2.
    """
    runs = np.asarray(runs, dtype=np.float64)
    if runs.ndim != 2 or runs.shape[0] < 2:
        raise ValueError(f"runs must have shape (R >= 2, d), got {runs.shape}")
    mean, std = runs.mean(axis=0), runs.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(mean != 0, std / np.abs(mean), np.inf)
    return dict(mean=mean, std=std, cv=cv)


# ---------------------------------------------------------------- Shapley axioms
def efficiency_gap(values: ArrayLike, full_value: float, base_value: float) -> float:
    """|sum(values) - (v(D) - v(empty))|: zero for exact Shapley values."""
    return float(abs(_vector(values, "values").sum() - (full_value - base_value)))


def _coalition_values(game: ValueFunction, masks: np.ndarray) -> np.ndarray:
    values = np.asarray(game(masks), dtype=np.float64)
    return values.mean(axis=1) if values.ndim == 2 else values


def find_null_players(game: ValueFunction, n_players: int, atol: float = 1e-9) -> list[int]:
    """Players whose addition never changes the value of any coalition (exhaustive, d <= 12)."""
    masks = all_masks(n_players)
    values = _coalition_values(game, masks)
    index = np.arange(2 ** n_players)
    return [j for j in range(n_players)
            if np.allclose(values[index[(index >> j) & 1 == 0] | (1 << j)], values[index[(index >> j) & 1 == 0]],
                           atol=atol)]


def find_symmetric_pairs(game: ValueFunction, n_players: int, atol: float = 1e-9) -> list[tuple[int, int]]:
    """Pairs (i, j) with v(S + i) = v(S + j) for every S containing neither (exhaustive)."""
    masks = all_masks(n_players)
    values = _coalition_values(game, masks)
    index = np.arange(2 ** n_players)
    pairs = []
    for i in range(n_players):
        for j in range(i + 1, n_players):
            free = index[((index >> i) & 1 == 0) & ((index >> j) & 1 == 0)]
            if np.allclose(values[free | (1 << i)], values[free | (1 << j)], atol=atol):
                pairs.append((i, j))
    return pairs


def check_axioms(values: ArrayLike, game: ValueFunction, n_players: int, full_value: float, base_value: float,
                 atol: float = 1e-6) -> dict[str, object]:
    """Efficiency, symmetry and null-player checks of attributions against their game.

    Returns:
        dict with ``efficiency_gap``, ``efficiency`` (bool), ``null_players``, ``null_player``
        (bool: every null player got |value| <= atol), ``symmetric_pairs`` and ``symmetry``
        (bool: every symmetric pair got equal values within atol).
    """
    values = _vector(values, "values")
    gap = efficiency_gap(values, full_value, base_value)
    nulls = find_null_players(game, n_players)
    pairs = find_symmetric_pairs(game, n_players)
    return dict(
        efficiency_gap=gap, efficiency=gap <= atol,
        null_players=nulls, null_player=all(abs(values[j]) <= atol for j in nulls),
        symmetric_pairs=pairs, symmetry=all(abs(values[i] - values[j]) <= atol for i, j in pairs),
    )


def align_words(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of the words two prompts share, in order (longest matching blocks; a comma
    glued to a word counts as the same word)."""
    import difflib

    def clean(words):
        return [w.strip(",.;:!?").lower() for w in words]

    matcher = difflib.SequenceMatcher(a=clean(a), b=clean(b), autojunk=False)
    return [(block.a + k, block.b + k) for block in matcher.get_matching_blocks() for k in range(block.size)]


def stability(explanation_a: Attributed, explanation_b: Attributed) -> float:
    """Ruzicka similarity between the attributions of a prompt and of a meaning-preserving
    variant, over the words they share (aligned in order), each side L1-normalised first so
    the score compares shapes, not scales."""
    pairs = align_words(explanation_a.features, explanation_b.features)
    if not pairs:
        raise ValueError("the two explanations share no words")
    a = np.abs(np.array([explanation_a.values[i] for i, _ in pairs], dtype=np.float64))
    b = np.abs(np.array([explanation_b.values[j] for _, j in pairs], dtype=np.float64))
    a = a / a.sum() if a.sum() else a
    b = b / b.sum() if b.sum() else b
    return ruzicka_similarity(a, b)
