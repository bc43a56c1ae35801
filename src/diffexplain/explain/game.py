"""Cooperative games over features: the value-function contract the explainers rely on.

A game maps a batch of boolean coalition masks, shape (n, d), to values, shape (n, K): one column
per random seed, so explainers can report uncertainty over seeds. ``MemoGame`` wraps a game so
each distinct coalition is evaluated once and counted against a budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..metrics.functional import all_masks  # noqa: F401  (the coalitions' enumeration lives with the axiom checks)


@runtime_checkable
class Game(Protocol):
    """The contract every explainer needs: d players, and values of coalitions."""

    n_players: int

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """Values of coalitions: bool (n, d) -> float (n, K)."""


# Optional capabilities. An explainer uses one when the game has it (``isinstance(game, NamedGame)``)
# and otherwise says what it used instead.


@runtime_checkable
class NamedGame(Protocol):
    """Players with names (a prompt's words): explanations label features with them."""

    feature_names: Sequence[str]


@runtime_checkable
class CountingGame(Protocol):
    """A game that generates: it reports how many images it asked for and how many the cache served."""

    def generation_stats(self) -> tuple[int, int]:
        """(images asked for, of which served by the cache)."""


@runtime_checkable
class TextGame(Protocol):
    """Players that are words of a text: SMILE weights coalitions by text distance and tests
    each coalition's image distance with a bootstrap."""

    def text_distance(self, masks: np.ndarray) -> np.ndarray:
        """Distance between the full text and each coalition's text: (n,)."""

    def distance_pvalues(self, masks: np.ndarray, *, n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(observed W1 (n,), bootstrap p-values (n,)) of each coalition's image against the reference."""


@runtime_checkable
class ImageGame(Protocol):
    """A game whose coalitions have images and image embeddings (read back from its cache)."""

    def images(self, masks: np.ndarray) -> np.ndarray:
        """uint8 (n, K, H, W, 3)."""

    def embeddings(self, masks: np.ndarray) -> np.ndarray:
        """float (n, K, E)."""


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

    def __init__(self, game: Game, budget: int | None = None):
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

