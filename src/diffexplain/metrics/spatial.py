"""Metrics of heatmaps and masks against true object masks (docs/methods.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _binary(mask, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {array.shape}")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be binary")
    return array.astype(bool)


def _pair(predicted, target) -> tuple[np.ndarray, np.ndarray]:
    predicted, target = _binary(predicted, "predicted"), _binary(target, "target")
    if predicted.shape != target.shape:
        raise ValueError(f"predicted and target must have the same shape, got {predicted.shape} and {target.shape}")
    return predicted, target


def iou(predicted: ArrayLike, target: ArrayLike) -> float:
    """|A n B| / |A u B| (1 when both are empty)."""
    predicted, target = _pair(predicted, target)
    union = (predicted | target).sum()
    return 1.0 if union == 0 else float((predicted & target).sum() / union)


def ioa(predicted: ArrayLike, target: ArrayLike) -> float:
    """Intersection over the predicted area |A n B| / |A| (0 when A is empty)."""
    predicted, target = _pair(predicted, target)
    area = predicted.sum()
    return 0.0 if area == 0 else float((predicted & target).sum() / area)


def pointing_game(heatmap: ArrayLike, target: ArrayLike) -> bool:
    """True if the heatmap's maximum lies inside the target mask."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    target = _binary(target, "target")
    if heatmap.shape != target.shape:
        raise ValueError(f"heatmap and target must have the same shape, got {heatmap.shape} and {target.shape}")
    return bool(target.flat[int(np.argmax(heatmap))])


def mass_ratio(heatmap: ArrayLike, target: ArrayLike) -> float:
    """Share of the (non-negative) heatmap's mass inside the mask divided by the mask's share of
    the image: 1 = chance, > 1 = concentrated on the object."""
    heatmap = np.clip(np.asarray(heatmap, dtype=np.float64), 0, None)
    target = _binary(target, "target")
    if heatmap.shape != target.shape:
        raise ValueError(f"heatmap and target must have the same shape, got {heatmap.shape} and {target.shape}")
    total, area = heatmap.sum(), target.mean()
    if total == 0 or area == 0:
        return float("nan")
    return float(heatmap[target].sum() / total / area)


def mean_iou(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """mIoU: the mean IoU over (predicted, target) pairs of a dataset."""
    values = [iou(p, t) for p, t in pairs]
    if not values:
        raise ValueError("pairs must not be empty")
    return float(np.mean(values))


def minmax_scale(values: Any) -> Any:
    """Min-max scale a map to [0, 1]: all zeros if it is constant. Works on numpy arrays and torch
    tensors alike (returns the same type)."""
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else values * 0


def imacs(attribution: ArrayLike, mask: ArrayLike, lam: float = 3.0) -> float:
    """Inpainting mask attention consistency score (I2AM): min-max normalise the map A, then
    S_in = sum(A * M) / sum(M), S_out = sum(A * (1 - M)) / sum(1 - M), IMACS = S_in - lam * S_out.

    Args:
        attribution: (H, W) map.
        mask: (H, W) binary mask (the inpainting mask, or the reference object's mask).
        lam: weight of attention leaking outside the mask (3 in the paper).
    """
    attribution = np.asarray(attribution, dtype=np.float64)
    mask = _binary(mask, "mask")
    if attribution.shape != mask.shape:
        raise ValueError(f"attribution and mask must have the same shape, got {attribution.shape} and {mask.shape}")
    if mask.all() or not mask.any():
        raise ValueError("mask must contain both inside and outside pixels")
    normalised = minmax_scale(attribution)
    inside = normalised[mask].mean()
    outside = normalised[~mask].mean()
    return float(inside - lam * outside)
