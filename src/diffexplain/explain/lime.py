"""LIME over prompt words (Ribeiro et al., 2016, applied to prompts by Gupta & Kanoria): Bernoulli
masks, exponential kernel, weighted linear fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Explanation
from .surrogate import SURROGATE_BUDGET, SurrogateExplainer, mask_cosine_distance, surrogate_explanation

if TYPE_CHECKING:
    from ..protocols import Game


class LimeExplainer(SurrogateExplainer):
    """LIME: a weighted linear surrogate of the value over word masks.

    Weights are pi(z) = exp(-D(z)^2 / sigma^2) with D the cosine distance between z and the
    all-ones mask. Reports coefficients, intercept (as ``base_value``), weighted R^2 (``info``)
    and bootstrap standard errors. The default surrogate is ridge (alpha 1), as LIME's.
    """

    name = "lime"
    default_surrogate = "ridge"

    def explain(self, game: Game, *, budget: int = SURROGATE_BUDGET, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        budget, rng, memo, masks, values = self._sample(game, budget, seed)
        weights = np.exp(-mask_cosine_distance(masks) ** 2 / self.kernel_width ** 2)
        return surrogate_explanation(self, game, feature_names_, masks, values, weights, memo, rng, seed,
                                      budget, pvalues=False)
