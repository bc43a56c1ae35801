"""Exact Shapley values over all 2^d coalitions (Gupta & Kanoria's method), the empty one
included: their public notebook drops it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Explanation
from ._common import feature_names, generation_counts, seed_stderr
from .game import MemoGame, all_masks

if TYPE_CHECKING:
    from ..protocols import Game

MAX_PLAYERS = 12  # 4096 coalitions; beyond that the cost doubles per word


def shapley_from_table(values: np.ndarray, d: int) -> np.ndarray:
    """Exact Shapley values from a full value table.

    Args:
        values: (2**d, K) values, row i = coalition with binary digits of i (player j = bit j).
        d: number of players.

    Returns:
        (d, K) Shapley values: phi_j = sum_{S not containing j} |S|!(d-|S|-1)!/d! [v(S+j) - v(S)].
    """
    index = np.arange(2 ** d)
    sizes = np.array([bin(i).count("1") for i in index])
    weights = np.array([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) if s < d else 0.0
                        for s in range(d + 1)])
    phi = np.zeros((d, values.shape[1]))
    for j in range(d):
        without = index[(index >> j) & 1 == 0]
        phi[j] = (weights[sizes[without], None] * (values[without | (1 << j)] - values[without])).sum(axis=0)
    return phi


class ShapleyExplainer:
    """Exact Shapley values. Efficiency holds to float precision: sum(values) = v(D) - v(empty)."""

    name = "shapley"

    def __init__(self, max_players: int = MAX_PLAYERS):
        self.max_players = max_players

    def explain(self, game: Game, *, budget: int | None = None, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        """Evaluate all 2^d coalitions of ``game`` and return their Shapley values.

        ``budget``, if given, must allow every coalition (2^d); ``seed`` is unused (the method is
        deterministic given the game). Both are kept so every explainer takes the same arguments.
        """
        d = game.n_players
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, np.integer))
                                   or budget < 2 ** min(d, 62)):
            raise ValueError(f"budget={budget!r} is below the 2^{d} = {2 ** d} coalitions exact Shapley evaluates; "
                             "leave it unset, or use method 'permutation' or 'kernelshap' for a smaller budget")
        if d > self.max_players:
            raise ValueError(
                f"exact Shapley over {d} words needs 2^{d} = {2 ** d} coalitions, above the cap of "
                f"{self.max_players} words; use method 'permutation' or 'kernelshap' with a budget instead")
        if d < 1:
            raise ValueError("the game must have at least one player")
        memo = MemoGame(game)
        table = memo(all_masks(d))
        per_seed = shapley_from_table(table, d)
        used, cached = generation_counts(game, memo.n_evaluated)
        return Explanation(
            method=self.name, features=feature_names(game, feature_names_), values=per_seed.mean(axis=1),
            base_value=float(table[0].mean()), full_value=float(table[-1].mean()), stderr=seed_stderr(per_seed),
            n_generations=used, n_cached=cached,
            info=dict(n_coalitions=memo.n_evaluated, n_seeds=int(table.shape[1])),
            coalitions=memo.evaluated_masks(),
            settings=dict(method=self.name, max_players=self.max_players),
        )
