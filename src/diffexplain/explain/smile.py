"""SMILE (Dehghani et al., 2025): Wasserstein responses, a text-distance kernel, a weighted linear surrogate,
and bootstrap p-values for every distance and every coefficient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Explanation
from .game import TextGame
from .surrogate import SURROGATE_BUDGET, SurrogateExplainer, mask_cosine_distance, surrogate_explanation

if TYPE_CHECKING:
    from ..protocols import Game


class SmileExplainer(SurrogateExplainer):
    """SMILE over prompt words.

    Procedure:
        1. Sample ``budget`` distinct non-empty Bernoulli(0.5) word masks (the full prompt first).
        2. Response y(z) = the game's value (``explain_prompt``'s default: -L2 between embeddings);
           with ``similarity="wasserstein"`` (the paper's choice) it is 1 - W1, W1 the
           1-D Wasserstein distance between the embedding values of the perturbed and the
           unperturbed image (``scipy.stats.wasserstein_distance``), averaged over seeds.
        3. Kernel pi(z) = sqrt(exp(-D(z)^2 / sigma^2)), D the game's text distance between the
           original and the perturbed prompt (word mover's distance over the text encoder's
           input embeddings) or, for games without text, the mask cosine distance.
        4. Weighted surrogate (OLS by default, ridge or Bayesian ridge): coefficients are the
           attributions, the weighted R^2 is the fidelity.
        5. p-values. Each distance W1(a, b): pool the values of a and b, resample the pool B times
           into two groups of the original sizes, p = (1 + #{W1* >= W1}) / (B + 1); with several
           sampler seeds, W1 and W1* are averaged over seeds (independent resamples per seed).
           The coalitions of one seed share the resampling positions (drawn in the pools' sorted
           order), so each p-value is an exact bootstrap p-value and all of them cost one matrix
           product (``embed.similarity.bootstrap_w1_null``). Each coefficient: refit on B row
           resamples; p = (1 + #{|b* - b| >= |b|}) / (B + 1).
    """

    name = "smile"
    default_bootstrap = 1000

    def explain(self, game: Game, *, budget: int = SURROGATE_BUDGET, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        budget, rng, memo, masks, values = self._sample(game, budget, seed)
        text = isinstance(game, TextGame)
        distance = game.text_distance(masks) if isinstance(game, TextGame) else mask_cosine_distance(masks)
        weights = np.sqrt(np.exp(-np.asarray(distance) ** 2 / self.kernel_width ** 2))
        extra = dict(text_distance=[float(v) for v in distance],
                     kernel_distance="word mover's distance" if text else "mask cosine distance")
        if isinstance(game, TextGame):
            observed, pvals = game.distance_pvalues(masks, n_bootstrap=self.n_bootstrap, seed=seed)
            extra.update(w1_distance=observed.tolist(), w1_pvalue=pvals.tolist())
        return surrogate_explanation(self, game, feature_names_, masks, values, weights, memo, rng, seed,
                                      budget, pvalues=True, extra_info=extra)
