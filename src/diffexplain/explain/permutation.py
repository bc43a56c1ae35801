"""Shapley values by permutation sampling, stratified by position, under a coalition budget.

A word's Shapley value is the mean, over the d positions k it can take in an ordering, of its mean
marginal contribution m_k at that position (Maleki et al., 2013; Castro et al., Computers &
Operations Research 2017: stratified sampling by position). The two end positions are single
coalitions, so they are evaluated exactly first: m_0 = v(i) - v(empty), m_{d-1} = v(D) - v(D - i).
The middle positions are sampled by antithetic permutation pairs (an ordering and its reverse),
balanced so that over d orderings every word takes every position once (the rows of a random Latin
square; balanced permutations have less error than independent ones: Mitchell et al., JMLR 2022).
Each sampled contribution is read against the straight line between the word's two ends, the
control variate that makes the ends alone exact on games of order <= 2:

    phi_i = (m_0 + m_{d-1}) / 2 + mean over samples of (contribution - line at its position),

and the residual term is shrunk towards zero by positive-part James-Stein on its sampling error
(few pairs: the ends carry the estimate; many: the samples do). Efficiency holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def balanced_orders(d: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Orderings in blocks of d, the rows of a random Latin square: in a block every player takes
    every position once. Each ordering on its own is uniformly random."""
    while True:
        sigma, tau = rng.permutation(d), rng.permutation(d)
        for row in rng.permutation(d):
            yield sigma[(row + tau) % d]


class PermutationExplainer:
    """Position-stratified permutation sampling: exact end positions, balanced antithetic pairs.

    Exact on additive games from a budget of d + 2, on games of order <= 2 from 2d + 2; converges to
    exact Shapley as pairs accumulate. The standard error combines the residuals' sampling error,
    the part the shrinkage removed (a bound on the bias it may leave) and the spread over seeds.
    """

    name = "permutation"

    def __init__(self, max_pairs: int = 1000):
        self.max_pairs = max_pairs  # once every coalition is memoised, more pairs cost no generations

    def explain(self, game: Game, *, budget: int, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        """Evaluate the end positions, then permutation pairs until the next would exceed ``budget``.

        Args:
            game: value function over d players.
            budget: maximum number of distinct coalitions evaluated (empty and full included); at
                least d + 2 (every word alone); 2d + 2 buys every end position.
            seed: seeds which words' leave-one-out coalitions a budget below 2d + 2 buys, and the
                permutations.
        """
        d = game.n_players
        budget = check_budget(budget, min(d + 2, 2 ** d), "permutation", d)
        rng = np.random.default_rng(seed)
        memo = MemoGame(game, budget=budget)
        eye = np.eye(d, dtype=bool)
        empty_full = memo(np.stack([np.zeros(d, bool), np.ones(d, bool)]))  # (2, K)
        v0, total = empty_full[0], empty_full[1] - empty_full[0]
        single = memo(eye) - v0[None, :]  # (d, K): m_0
        loo = np.full(single.shape, np.nan)
        for player in rng.permutation(d):  # as many leave-one-out coalitions as fit, in random order
            if memo.n_evaluated + memo.new_count(~eye[player:player + 1]) <= budget:
                loo[player] = empty_full[1] - memo(~eye[player:player + 1])[0]  # m_{d-1}
        have = ~np.isnan(loo[:, 0])
        if not have.all():  # a word without its leave-one-out: the others' mean end-to-end slope
            borrowed = (loo[have] - single[have]).mean(axis=0) if have.any() else np.zeros_like(total)
            loo[~have] = single[~have] + borrowed[None, :]
        # residuals of the sampled middle positions, per player: (samples, K) each
        samples: list[list[np.ndarray]] = [[] for _ in range(d)]
        n_pairs, n_sampled = 0, 0
        stale = 0
        if have.all() and d > 2:
            slope = (loo - single) / (d - 1)  # (d, K): the line from m_0 to m_{d-1}, per position
            orders = balanced_orders(d, rng)
            while stale < 50 and n_pairs < self.max_pairs:
                order = next(orders)
                masks = np.concatenate([_prefix_masks(order), _prefix_masks(order[::-1])])
                new = memo.new_count(masks)
                if memo.n_evaluated + new > budget:
                    stale += 1  # another pair might still reuse enough coalitions to fit
                    continue
                n_sampled += new
                values = memo(masks)
                for half, ordering in enumerate((order, order[::-1])):
                    contribution = np.diff(values[half * (d + 1):(half + 1) * (d + 1)], axis=0)  # (k, K)
                    for k in range(1, d - 1):
                        player = ordering[k]
                        samples[player].append(contribution[k] - single[player] - k * slope[player])
                n_pairs += 1
                stale = 0
        base = (single + loo) / 2  # (d, K)
        # post-stratified: the middle positions' mean residual, weighted by their share (d - 2) / d
        residual_mean = np.stack([np.mean(rows, axis=0) if rows else np.zeros(single.shape[1])
                                  for rows in samples]) * (d - 2) / max(d, 1)  # (d, K)
        shrink, sampling, removed = 0.0, np.zeros(d), np.zeros(d)
        counted = [len(rows) for rows in samples]
        if n_pairs:
            pooled = residual_mean.mean(axis=1)  # the seeds' mean
            # the variance of each mean from its samples' spread (the halves of an antithetic pair
            # are negatively correlated, so this overstates it and shrinks on the safe side)
            error2 = np.array([np.var(np.mean(rows, axis=1), ddof=1) / len(rows) if len(rows) > 1 else np.nan
                               for rows in samples]) * ((d - 2) / d) ** 2
            known = np.isfinite(error2)
            spread = float(np.mean(pooled ** 2))
            mean_error2 = float(np.mean(error2[known])) if known.any() else 0.0
            shrink = 1.0 if spread <= 0 else max(0.0, 1.0 - mean_error2 / spread)
            sampling = shrink * np.sqrt(np.where(known, error2, mean_error2))
            removed = (1.0 - shrink) * np.abs(pooled)
        per_seed = base + shrink * residual_mean
        per_seed += (total - per_seed.sum(axis=0))[None, :] / d  # efficiency, exactly
        used, cached = generation_counts(game, memo.n_evaluated)
        return Explanation(
            method=self.name, features=feature_names(game, feature_names_), values=per_seed.mean(axis=1),
            base_value=float(empty_full[0].mean()), full_value=float(empty_full[1].mean()),
            stderr=combine_stderr(sampling, removed, seed_stderr(per_seed)), n_generations=used, n_cached=cached,
            info=dict(n_coalitions=memo.n_evaluated, n_permutation_pairs=n_pairs, n_sampled_coalitions=n_sampled,
                      n_leave_one_out=int(have.sum()), shrinkage=shrink,
                      n_middle_samples=counted, budget=budget),
            coalitions=memo.evaluated_masks(),
            settings=dict(method=self.name, budget=budget, seed=seed),
        )
