"""Metrics: pure functions (``functional``)."""

from .functional import (
    check_axioms, consistency, efficiency_gap, fidelity, find_null_players, find_symmetric_pairs, normalise,
    precision_at_k, ranks, ranks_aligned, rmse_normalised, roc_auc, ruzicka_similarity,
)

__all__ = ["check_axioms", "consistency", "efficiency_gap", "fidelity", "find_null_players", "find_symmetric_pairs",
           "normalise", "precision_at_k", "ranks", "ranks_aligned", "rmse_normalised", "roc_auc",
           "ruzicka_similarity"]
