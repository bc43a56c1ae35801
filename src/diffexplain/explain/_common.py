"""Small pieces shared by the explainers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..protocols import Game


def feature_names(game: Game, names: Sequence[str] | None) -> tuple[str, ...]:
    from .game import NamedGame

    names = names if names is not None else (game.feature_names if isinstance(game, NamedGame) else None)
    if names is None:
        return tuple(f"x{i}" for i in range(game.n_players))
    if len(names) != game.n_players:
        raise ValueError(f"feature_names must have {game.n_players} entries, got {len(names)}")
    return tuple(names)


def seed_stderr(per_seed: np.ndarray) -> np.ndarray:
    """Standard error of the seed mean, per feature. per_seed: (d, K). NaN when K == 1."""
    k = per_seed.shape[1]
    if k < 2:
        return np.full(per_seed.shape[0], np.nan)
    return per_seed.std(axis=1, ddof=1) / np.sqrt(k)


def combine_stderr(*parts: np.ndarray) -> np.ndarray:
    """Root-sum-of-squares of independent error sources, ignoring undefined (NaN) parts."""
    stacked = np.stack(parts)
    defined = ~np.isnan(stacked)
    total = np.where(defined, stacked ** 2, 0.0).sum(axis=0)
    return np.where(defined.any(axis=0), np.sqrt(total), np.nan)


def generation_counts(game: Game, n_coalitions: int) -> tuple[int, int]:
    """(generations used, generations served from the cache) as reported by the game, if it counts."""
    from .game import CountingGame

    return game.generation_stats() if isinstance(game, CountingGame) else (n_coalitions, 0)


def check_budget(budget: Any, minimum: int, method: str, d: int) -> int:
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool):
        raise ValueError(f"budget must be an integer, got {budget!r}")
    if budget < minimum:
        raise ValueError(f"budget={budget} is too small for {method} with {d} features: it needs at least {minimum}")
    return int(budget)
