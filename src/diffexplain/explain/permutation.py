"""Shapley values by antithetic permutation sampling under a coalition budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Explanation
from ._common import check_budget, combine_stderr, feature_names, generation_counts, seed_stderr
from .game import MemoGame

if TYPE_CHECKING:
    from ..protocols import Game


def _prefix_masks(order: np.ndarray) -> np.ndarray:
    d = len(order)
    masks = np.zeros((d + 1, d), dtype=bool)
    for k, player in enumerate(order):
        masks[k + 1:, player] = True
    return masks


class PermutationExplainer:
    """Monte-Carlo Shapley values from pairs of a random permutation and its reverse.

    Each permutation's marginal contributions sum to v(D) - v(empty), so efficiency holds exactly.
    The standard error combines the spread over permutation pairs and over seeds.
    """

    name = "permutation"

    def __init__(self, max_pairs: int = 1000):
        self.max_pairs = max_pairs  # once every coalition is memoised, more pairs cost no generations

    def explain(self, game: Game, *, budget: int, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        """Sample permutation pairs until the next pair would exceed ``budget`` distinct coalitions.

        Args:
            game: value function over d players.
            budget: maximum number of distinct coalitions evaluated (empty and full included);
                one pair needs at most 2d.
            seed: seeds the permutation sampler.
        """
        d = game.n_players
        budget = check_budget(budget, 2 * d, "permutation", d)
        rng = np.random.default_rng(seed)
        memo = MemoGame(game, budget=budget)
        empty_full = memo(np.stack([np.zeros(d, bool), np.ones(d, bool)]))
        pairs: list[np.ndarray] = []
        stale = 0
        while stale < 50 and len(pairs) < self.max_pairs:
            order = rng.permutation(d)
            masks = np.concatenate([_prefix_masks(order), _prefix_masks(order[::-1])])
            if memo.n_evaluated + memo.new_count(masks) > budget:
                stale += 1  # another pair might still reuse enough coalitions to fit
                continue
            values = memo(masks)
            contrib = np.zeros((2, d, values.shape[1]))
            for half, ordering in enumerate((order, order[::-1])):
                block = values[half * (d + 1):(half + 1) * (d + 1)]
                contrib[half, ordering] = np.diff(block, axis=0)
            pairs.append(contrib.mean(axis=0))
            stale = 0
        estimates = np.stack(pairs)  # (n_pairs, d, K)
        per_seed = estimates.mean(axis=0)
        sampling = (estimates.mean(axis=2).std(axis=0, ddof=1) / np.sqrt(len(pairs))
                    if len(pairs) > 1 else np.full(d, np.nan))
        used, cached = generation_counts(game, memo.n_evaluated)
        return Explanation(
            method=self.name, features=feature_names(game, feature_names_), values=per_seed.mean(axis=1),
            base_value=float(empty_full[0].mean()), full_value=float(empty_full[1].mean()),
            stderr=combine_stderr(sampling, seed_stderr(per_seed)), n_generations=used, n_cached=cached,
            info=dict(n_coalitions=memo.n_evaluated, n_permutation_pairs=len(pairs), budget=budget),
            coalitions=memo.evaluated_masks(),
            settings=dict(method=self.name, budget=budget, seed=seed),
        )
