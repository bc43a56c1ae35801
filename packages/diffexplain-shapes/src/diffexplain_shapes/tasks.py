"""Inputs of the shapes editing tasks: inpainting boxes and Paint-by-Example references."""

from __future__ import annotations

import dataclasses

import numpy as np

from .scene import Scene, ShapeObject

REFERENCE_SIZE = 64


def box_mask(scene: Scene, index: int, margin: int = 3) -> np.ndarray:
    """The region an object may be repainted in: its bounding box plus ``margin`` pixels, (64, 64) bool."""
    mask = scene.objects[index].mask()
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    out = np.zeros_like(mask)
    out[max(0, rows[0] - margin):rows[-1] + margin + 1, max(0, cols[0] - margin):cols[-1] + margin + 1] = True
    return out


def _centred(scene: Scene, index: int) -> ShapeObject:
    return dataclasses.replace(scene.objects[index], x=32.0, y=32.0, position="centre")


def reference_crop(scene: Scene, index: int) -> np.ndarray:
    """The object alone on white, centred, uint8 (REFERENCE_SIZE, REFERENCE_SIZE, 3)."""
    return Scene(objects=(_centred(scene, index),)).render(REFERENCE_SIZE, REFERENCE_SIZE)


def reference_object_mask(scene: Scene, index: int) -> np.ndarray:
    """The object's pixels in ``reference_crop(scene, index)``: bool (REFERENCE_SIZE, REFERENCE_SIZE)."""
    return _centred(scene, index).mask(REFERENCE_SIZE, REFERENCE_SIZE)
