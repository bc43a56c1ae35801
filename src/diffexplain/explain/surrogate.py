"""Weighted linear surrogates shared by LIME and SMILE (as captum's ``LimeBase``: a kernel, a
surrogate and a perturbation), the masks they sample, and the weighted R^2 they are judged by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..metrics.functional import weighted_r2
from ..types import Explanation
from ._common import check_budget, combine_stderr, feature_names, generation_counts, seed_stderr
from .game import MemoGame

SURROGATES = ("ols", "ridge", "bayesian_ridge")
SURROGATE_BUDGET = 128  # LIME's and SMILE's default coalitions (``methods.default_budget``)


def fit_surrogate(z: np.ndarray, y: np.ndarray, weights: np.ndarray, kind: str = "ols",
                  alpha: float = 1.0) -> tuple[np.ndarray, float]:
    """Fit y ~ z . coef + intercept with sample weights.

    Args:
        z: (n, d) binary design; y: (n,) responses; weights: (n,) non-negative.
        kind: "ols" (weighted least squares), "ridge" (penalty ``alpha`` on the coefficients, as
            scikit-learn's Ridge), or "bayesian_ridge" (scikit-learn's BayesianRidge).

    Returns:
        (coef of shape (d,), intercept).
    """
    if kind not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if kind == "bayesian_ridge":
        from sklearn.linear_model import BayesianRidge

        model = BayesianRidge().fit(z, y, sample_weight=weights)
        return model.coef_.astype(np.float64), float(model.intercept_)
    total = weights.sum()
    z_mean = weights @ z / total
    y_mean = weights @ y / total
    zc, yc = z - z_mean, y - y_mean
    sw = np.sqrt(weights)[:, None]
    if kind == "ols":
        coef, *_ = np.linalg.lstsq(zc * sw, yc * sw[:, 0], rcond=None)
    else:
        gram = (zc * weights[:, None]).T @ zc + alpha * np.eye(z.shape[1])
        coef = np.linalg.solve(gram, (zc * weights[:, None]).T @ yc)
    return coef, float(y_mean - z_mean @ coef)


def sample_masks(d: int, n: int, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """The all-ones mask, then distinct non-empty Bernoulli(p) masks: (min(n, 2^d - 1), d) bool."""
    n = min(n, 2 ** d - 1)
    masks = [np.ones(d, bool)]
    seen = {masks[0].tobytes()}
    while len(masks) < n:
        mask = rng.random(d) < p
        key = mask.tobytes()
        if mask.any() and key not in seen:
            seen.add(key)
            masks.append(mask)
    return np.stack(masks)


def mask_cosine_distance(masks: np.ndarray) -> np.ndarray:
    """Cosine distance between each mask and the all-ones mask: 1 - sqrt(|z| / d)."""
    masks = np.asarray(masks, dtype=float)
    return 1.0 - np.sqrt(masks.sum(axis=1) / masks.shape[1])


def bootstrap_coefficients(z: np.ndarray, y: np.ndarray, w: np.ndarray, kind: str, alpha: float, n_bootstrap: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Refit the surrogate on row resamples: (n_bootstrap, d) coefficients."""
    n = len(y)
    out = np.empty((n_bootstrap, z.shape[1]))
    for b in range(n_bootstrap):
        pick = rng.integers(0, n, n)
        out[b] = fit_surrogate(z[pick], y[pick], w[pick], kind, alpha)[0]
    return out


class SurrogateExplainer:
    """Shared by LIME and SMILE: validated settings, and the sampled masks with their values.

    Subclasses set their defaults as class attributes (``default_surrogate``, ``default_bootstrap``).
    """

    name = "surrogate"
    default_surrogate = "ols"
    default_bootstrap = 200

    def __init__(self, kernel_width: float = 0.25, surrogate: str | None = None, alpha: float = 1.0,
                 n_bootstrap: int | None = None):
        surrogate = self.default_surrogate if surrogate is None else surrogate
        n_bootstrap = self.default_bootstrap if n_bootstrap is None else n_bootstrap
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        if kernel_width <= 0:
            raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
        if n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
        self.kernel_width, self.surrogate, self.alpha, self.n_bootstrap = kernel_width, surrogate, alpha, n_bootstrap

    def _sample(self, game, budget: int, seed: int):
        """(budget, rng, memo, masks (n, d), values (n, K)) for ``budget`` distinct masks."""
        d = game.n_players
        budget = check_budget(budget, min(d + 2, 2 ** d - 1), self.name, d)
        rng = np.random.default_rng(seed)
        memo = MemoGame(game, budget=budget)
        masks = sample_masks(d, budget, rng)
        return budget, rng, memo, masks, memo(masks)


def surrogate_explanation(explainer: SurrogateExplainer, game: Any, names: Sequence[str] | None,
                          masks: np.ndarray, values: np.ndarray, weights: np.ndarray, memo: MemoGame,
                          rng: np.random.Generator, seed: int, budget: int, pvalues: bool,
                          extra_info: dict[str, Any] | None = None) -> Explanation:
    """Fit the surrogate to sampled coalitions' mean values and package it with bootstrap errors
    (and, with ``pvalues``, bootstrap p-values of every coefficient)."""
    z = masks.astype(float)
    y = values.mean(axis=1)
    coef, intercept = fit_surrogate(z, y, weights, explainer.surrogate, explainer.alpha)
    r2 = weighted_r2(y, z @ coef + intercept, weights)
    per_seed = np.stack([fit_surrogate(z, values[:, k], weights, explainer.surrogate, explainer.alpha)[0]
                         for k in range(values.shape[1])], axis=1)
    boot = bootstrap_coefficients(z, y, weights, explainer.surrogate, explainer.alpha, explainer.n_bootstrap, rng)
    p = None
    if pvalues:
        # H0: coefficient = 0. The bootstrap distribution shifted to the null gives
        # p = (1 + #{|b* - b| >= |b|}) / (B + 1).
        p = (1 + (np.abs(boot - coef[None]) >= np.abs(coef)[None]).sum(axis=0)) / (len(boot) + 1)
    used, cached = generation_counts(game, memo.n_evaluated)
    info = dict(fidelity_r2=r2, intercept=intercept, n_coalitions=memo.n_evaluated,
                kernel_width=explainer.kernel_width, surrogate=explainer.surrogate,
                responses=y.tolist(), weights=weights.tolist())
    info.update(extra_info or {})
    return Explanation(
        method=explainer.name, features=feature_names(game, names), values=coef, base_value=intercept,
        full_value=float(values[0].mean()), stderr=combine_stderr(boot.std(axis=0, ddof=1), seed_stderr(per_seed)),
        pvalues=p, n_generations=used, n_cached=cached, info=info, coalitions=masks,
        settings=dict(method=explainer.name, budget=budget, seed=seed, kernel_width=explainer.kernel_width,
                      surrogate=explainer.surrogate, alpha=explainer.alpha, n_bootstrap=explainer.n_bootstrap),
    )
