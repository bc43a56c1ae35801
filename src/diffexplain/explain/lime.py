"""LIME over prompt words (Ribeiro et al., 2016, applied to prompts by Gupta & Kanoria): Bernoulli
masks, exponential kernel, weighted linear fit."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..types import Explanation
from ._common import check_budget, combine_stderr, feature_names, generation_counts, seed_stderr
from .game import MemoGame
from .surrogate import SURROGATES, fit_surrogate, weighted_r2

SURROGATE_BUDGET = 128  # LIME's and SMILE's default coalitions (why: ``explain.api.default_budget``)


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


def bootstrap_coefficients(z, y, w, kind, alpha, n_bootstrap, rng) -> np.ndarray:
    """Refit the surrogate on row resamples: (n_bootstrap, d) coefficients."""
    n = len(y)
    out = np.empty((n_bootstrap, z.shape[1]))
    for b in range(n_bootstrap):
        pick = rng.integers(0, n, n)
        out[b] = fit_surrogate(z[pick], y[pick], w[pick], kind, alpha)[0]
    return out


class SurrogateExplainer:
    """Shared by LIME and SMILE: validated settings, and the sampled masks with their values."""

    name = "surrogate"

    def __init__(self, kernel_width: float = 0.25, surrogate: str = "ols", alpha: float = 1.0,
                 n_bootstrap: int = 200):
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


class LimeExplainer(SurrogateExplainer):
    """LIME: a weighted linear surrogate of the value over word masks.

    Weights are pi(z) = exp(-D(z)^2 / sigma^2) with D the cosine distance between z and the
    all-ones mask. Reports coefficients, intercept (as ``base_value``), weighted R^2 (``info``)
    and bootstrap standard errors. The default surrogate is ridge (alpha 1), as LIME's.
    """

    name = "lime"

    def __init__(self, kernel_width: float = 0.25, surrogate: str = "ridge", alpha: float = 1.0,
                 n_bootstrap: int = 200):
        super().__init__(kernel_width, surrogate, alpha, n_bootstrap)

    def explain(self, game, *, budget: int = SURROGATE_BUDGET, seed: int = 0,
                feature_names_: Optional[Sequence[str]] = None) -> Explanation:
        budget, rng, memo, masks, values = self._sample(game, budget, seed)
        weights = np.exp(-mask_cosine_distance(masks) ** 2 / self.kernel_width ** 2)
        return _surrogate_explanation(self, game, feature_names_, masks, values, weights, memo, rng, seed,
                                      budget, pvalues=False)


def _surrogate_explanation(explainer, game, names, masks, values, weights, memo, rng, seed, budget,
                           pvalues: bool, extra_info: Optional[dict] = None) -> Explanation:
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
