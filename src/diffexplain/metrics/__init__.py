"""Metrics: pure functions over attributions (``functional``) and over maps and masks (``spatial``)."""

from .functional import (
    align_words,
    bootstrap_ci,
    check_axioms,
    consistency,
    efficiency_gap,
    fidelity,
    find_null_players,
    find_symmetric_pairs,
    frechet_distance,
    precision_at_k,
    ranks,
    ranks_aligned,
    rmse_normalised,
    roc_auc,
    ruzicka_similarity,
    spearman,
    stability,
    sum_to_one,
)
from .spatial import imacs, ioa, iou, mass_ratio, mean_iou, minmax_scale, pointing_game

__all__ = [
    "align_words", "bootstrap_ci", "check_axioms", "consistency", "efficiency_gap", "fidelity", "find_null_players",
    "find_symmetric_pairs", "frechet_distance", "imacs", "ioa", "iou", "mass_ratio", "mean_iou", "minmax_scale",
    "pointing_game", "precision_at_k", "ranks", "ranks_aligned", "rmse_normalised", "roc_auc", "ruzicka_similarity",
    "spearman", "stability", "sum_to_one",
]
