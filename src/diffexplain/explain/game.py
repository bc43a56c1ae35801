"""Cooperative games over features: the value-function contract the explainers rely on.

A game maps a batch of boolean coalition masks, shape (n, d), to values, shape (n, K): one column
per random seed, so explainers can report uncertainty over seeds. ``MemoGame`` wraps a game so
each distinct coalition is evaluated once and counted against a budget.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import numpy as np

from ..metrics.functional import all_masks  # noqa: F401  (the coalitions' enumeration lives with the axiom checks)


class Game(Protocol):
    n_players: int

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """Values of coalitions: bool (n, d) -> float (n, K)."""


class FunctionGame:
    """A game from a plain function of one mask (handy for known games in tests and docs)."""

    def __init__(self, n_players: int, function: Callable[[np.ndarray], float]):
        self.n_players = n_players
        self.function = function

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        return np.array([[float(self.function(m))] for m in np.asarray(masks, dtype=bool)])


class BudgetExceeded(RuntimeError):
    pass


class MemoGame:
    """Evaluate each distinct coalition once, in batches, and count evaluations.

    Args:
        game: the wrapped game.
        budget: maximum number of distinct coalitions, or None for no limit.
    """

    def __init__(self, game: Game, budget: Optional[int] = None):
        self.game = game
        self.n_players = game.n_players
        self.budget = budget
        self.memo: dict[bytes, np.ndarray] = {}

    @property
    def n_evaluated(self) -> int:
        return len(self.memo)

    def evaluated_masks(self) -> np.ndarray:
        """Every coalition evaluated so far, in evaluation order: (n, d) bool."""
        if not self.memo:
            return np.zeros((0, self.n_players), bool)
        return np.stack([np.frombuffer(key, dtype=bool) for key in self.memo])

    def new_count(self, masks: np.ndarray) -> int:
        """How many of these coalitions are not evaluated yet."""
        return len({m.tobytes() for m in np.asarray(masks, dtype=bool)} - self.memo.keys())

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != self.n_players:
            raise ValueError(f"masks must have shape (n, {self.n_players}), got {masks.shape}")
        keys = [m.tobytes() for m in masks]
        todo: dict[bytes, np.ndarray] = {}
        for key, mask in zip(keys, masks):
            if key not in self.memo and key not in todo:
                todo[key] = mask
        if self.budget is not None and len(self.memo) + len(todo) > self.budget:
            raise BudgetExceeded(f"{len(self.memo) + len(todo)} coalitions exceed the budget of {self.budget}")
        if todo:
            values = np.asarray(self.game(np.stack(list(todo.values()))), dtype=np.float64)
            if values.ndim == 1:
                values = values[:, None]
            for key, row in zip(todo, values):
                self.memo[key] = row
        return np.stack([self.memo[k] for k in keys])

