"""Read a shapes image back into objects and score it against its caption.

Rule-based on the world's known palette and geometry: every pixel goes to its nearest palette
colour (object colours + backgrounds), connected components per object colour are the objects,
thin halo components (blurred edges between two colours) are dropped, the bounding box gives
size (its extent) and position (its centre, nearest slot), and shape
comes from how much of the bounding box the object fills and how wide its top and bottom rows are.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import ndimage

from .captions import ExpectedObject, parse_caption
from .scene import BACKGROUNDS, COLOURS, IMAGE_SIZE, POSITIONS, SIZES

_OBJECT_NAMES = list(COLOURS)
_BG_NAMES = list(BACKGROUNDS)
_PALETTE = np.array([COLOURS[c] for c in _OBJECT_NAMES] + [BACKGROUNDS[b] for b in _BG_NAMES], dtype=np.float32)
_SIZE_THRESHOLD = SIZES["small"] + SIZES["big"]  # between the two extents 2*r_small and 2*r_big


@dataclasses.dataclass(frozen=True)
class FoundObject:
    colour: str
    shape: str
    size: str
    position: str
    area: int
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right), inclusive-exclusive


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Per-attribute verdicts; None where the caption names no such attribute."""

    objects: tuple[FoundObject, ...]
    background: str
    colour: bool
    count: bool
    shape: bool
    size: bool | None
    position: bool | None
    background_ok: bool | None

    @property
    def all_ok(self) -> bool:
        return all(v is not False for v in (self.colour, self.count, self.shape, self.size,
                                             self.position, self.background_ok))

    @property
    def edit_ok(self) -> bool:
        """The success rule of edits and insertions: colours, count, shapes and (where named) positions."""
        return bool(self.colour and self.count and self.shape and self.position is not False)


def _classify_shape(component: np.ndarray) -> str:
    rows = np.flatnonzero(component.any(axis=1))
    cols = np.flatnonzero(component.any(axis=0))
    box = component[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    fill = box.mean()
    height = box.shape[0]
    band = max(1, height // 4)
    top_width = box[:band].sum(axis=1).mean()
    bottom_width = box[-band:].sum(axis=1).mean()
    if bottom_width > 1.8 * max(top_width, 1.0) and fill < 0.7:
        return "triangle"
    return "square" if fill > 0.89 else "circle"


def read_objects(image: np.ndarray, min_area: int = 30) -> tuple[list[FoundObject], str]:
    """Segment an RGB uint8 image of shape (H, W, 3) into objects and a background name."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    height, width = image.shape[:2]
    pixels = image.reshape(-1, 3).astype(np.float32)
    labels = np.argmin(((pixels[:, None, :] - _PALETTE[None]) ** 2).sum(-1), axis=1).reshape(height, width)
    n_obj = len(_OBJECT_NAMES)
    bg_counts = np.bincount(labels.ravel(), minlength=len(_PALETTE))[n_obj:]
    background = _BG_NAMES[int(np.argmax(bg_counts))]
    scale_x, scale_y = IMAGE_SIZE / width, IMAGE_SIZE / height
    found: list[FoundObject] = []
    for ci, colour in enumerate(_OBJECT_NAMES):
        components, count = ndimage.label(labels == ci)
        for k in range(1, count + 1):
            component = components == k
            area = int(component.sum())
            if area * scale_x * scale_y < min_area:
                continue
            # Blurred edges between two palette colours pass through a third (yellow on black
            # through orange): such halos are thin rings that a 1-pixel erosion wipes out.
            core = ndimage.binary_erosion(component)
            if core.sum() * scale_x * scale_y < min_area / 2:
                continue
            rows = np.flatnonzero(component.any(axis=1))
            cols = np.flatnonzero(component.any(axis=0))
            top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            extent = max((bottom - top) * scale_y, (right - left) * scale_x)
            cx, cy = (left + right) / 2 * scale_x, (top + bottom) / 2 * scale_y
            position = min(POSITIONS, key=lambda p: (POSITIONS[p][0] - cx) ** 2 + (POSITIONS[p][1] - cy) ** 2)
            found.append(FoundObject(
                colour=colour, shape=_classify_shape(component),
                size="big" if extent > _SIZE_THRESHOLD else "small", position=position,
                area=area, bbox=(int(top), int(left), int(bottom), int(right)),
            ))
    return found, background


def _agreement(expected: ExpectedObject, found: FoundObject) -> int:
    return sum(getattr(expected, a) == getattr(found, a) for a in ("colour", "shape", "size", "position")
               if getattr(expected, a) is not None)


def check(image, caption: str) -> CheckResult:
    """Score an image against a shapes caption.

    Args:
        image: RGB uint8 array (H, W, 3) or a PIL image.
        caption: a shapes-world caption (unknown words raise ValueError).

    Returns:
        CheckResult. ``colour``: the multiset of object colours equals the caption's; ``count``:
        as many objects as described; ``shape`` / ``size`` / ``position``: every described object,
        matched to a found object by the assignment that agrees on most attributes, has the named
        attribute (None if the caption names none).
    """
    parsed = parse_caption(caption)
    found, background = read_objects(np.asarray(image.convert("RGB") if hasattr(image, "convert") else image))
    expected = parsed.objects
    colour_ok = sorted(o.colour for o in found) == sorted(o.colour for o in expected if o.colour)
    count_ok = len(found) == len(expected)
    # best assignment of expected -> found (at most 3 objects: brute force is exact and cheap)
    best: tuple[int, tuple] = (-1, ())
    if len(found) >= len(expected):
        for perm in itertools.permutations(range(len(found)), len(expected)):
            score = sum(_agreement(e, found[j]) for e, j in zip(expected, perm))
            if score > best[0]:
                best = (score, perm)
    matched = [found[j] for j in best[1]] if best[0] >= 0 else []

    def attr_ok(attr: str) -> bool | None:
        named = [e for e in expected if getattr(e, attr) is not None]
        if not named:
            return None
        if not matched:
            return False
        return all(getattr(e, attr) == getattr(f, attr) for e, f in zip(expected, matched)
                   if getattr(e, attr) is not None)

    shape_ok = attr_ok("shape")
    return CheckResult(
        objects=tuple(found), background=background, colour=colour_ok, count=count_ok,
        shape=bool(shape_ok) if shape_ok is not None else False,
        size=attr_ok("size"), position=attr_ok("position"),
        background_ok=None if parsed.background is None else background == parsed.background,
    )
