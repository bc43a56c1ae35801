"""Metrics: pure functions over attributions (``functional``) and over maps and masks (``spatial``)."""

from .functional import (
    align_words,
    check_axioms,
    consistency,
    efficiency_gap,
    fidelity,
    find_null_players,
    find_symmetric_pairs,
    precision_at_k,
    ranks,
    ranks_aligned,
    rmse_normalised,
    roc_auc,
    ruzicka_similarity,
    stability,
    sum_to_one,
)
from .spatial import imacs, ioa, iou, mass_ratio, mean_iou, minmax_scale, pointing_game

__all__ = [
    "align_words", "check_axioms", "consistency", "efficiency_gap", "fidelity", "find_null_players",
    "find_symmetric_pairs", "imacs", "ioa", "iou", "mass_ratio", "mean_iou", "minmax_scale", "pointing_game",
    "precision_at_k",
    "ranks", "ranks_aligned", "rmse_normalised", "roc_auc", "ruzicka_similarity", "stability", "sum_to_one",
]
