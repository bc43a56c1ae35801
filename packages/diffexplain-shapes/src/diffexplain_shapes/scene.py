"""Scenes of the shapes world: objects, captions with word roles, rendering and exact masks.

A scene is 1-3 coloured shapes on a background. Its caption is built from the scene by a small
grammar, so every word has a known role, the object it refers to, and a binary relevance
(content word = 1, filler word = 0). Rendering is hard-edged and evaluated at pixel centres, so
each object's mask is exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

IMAGE_SIZE = 64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 210, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),  # the default; never named in a caption, so naming one always matters
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}
NAMED_BACKGROUNDS = ("black", "gray")
SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 7.0, "big": 11.0}  # radius in pixels at 64x64
POSITIONS: dict[str, tuple[float, float]] = {  # slot centre (x, y) in pixels at 64x64
    "left": (15.0, 32.0),
    "right": (49.0, 32.0),
    "top": (32.0, 15.0),
    "bottom": (32.0, 49.0),
    "centre": (32.0, 32.0),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on", "the", "left"),
    "right": ("on", "the", "right"),
    "top": ("at", "the", "top"),
    "bottom": ("at", "the", "bottom"),
    "centre": ("in", "the", "centre"),
}
PREFIXES: tuple[tuple[str, ...], ...] = ((), ("a", "picture", "of"), ("an", "image", "of"), ("there", "is"))
JOINERS: tuple[str, ...] = ("and", "with")
JITTER = 2.0

ROLES = ("colour", "shape", "size", "position", "background", "action", "filler")
CONTENT_ROLES = frozenset({"colour", "shape", "size", "position", "background", "action"})


def vocabulary() -> list[str]:
    """Every word the shapes world's captions can contain, in a fixed order."""
    words: list[str] = []
    for group in (
        ("a", "an", "the", "and", "with", "on", "at", "in", "of", "picture", "image", "there", "is"),
        tuple(COLOURS),
        SHAPES,
        tuple(SIZES),
        tuple(POSITIONS),
        NAMED_BACKGROUNDS,
        ("background",),
    ):
        for word in group:
            if word not in words:
                words.append(word)
    return words


def is_held_out(colour: str, shape: str) -> bool:
    """The compositional split: a (colour, shape) pair is held out iff
    (colour index - shape index) mod 6 == 3, i.e. yellow circle, purple square, orange triangle.

    Every colour and shape still occurs in training, only these pairings never do.
    """
    return (list(COLOURS).index(colour) - SHAPES.index(shape)) % len(COLOURS) == 3


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One object: attributes, exact geometry, and which attributes its caption names."""

    colour: str
    shape: str
    size: str
    position: str
    x: float
    y: float
    name_size: bool = True
    name_position: bool = True

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    def mask(self, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> np.ndarray:
        """Exact boolean mask, shape (height, width), evaluated at pixel centres.

        Geometry is defined at 64x64 and scaled to the requested size, so non-square sizes work.
        """
        sy, sx = height / IMAGE_SIZE, width / IMAGE_SIZE
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        # back to the 64x64 frame, at pixel centres
        px = (xx + 0.5) / sx
        py = (yy + 0.5) / sy
        dx, dy, r = px - self.x, py - self.y, self.radius
        if self.shape == "circle":
            return dx * dx + dy * dy <= r * r
        if self.shape == "square":
            half = 0.9 * r
            return (np.abs(dx) <= half) & (np.abs(dy) <= half)
        if self.shape == "triangle":
            # apex up: apex (x, y - r), base corners (x +- r, y + r)
            inside_y = (dy >= -r) & (dy <= r)
            half_width = (dy + r) / 2.0
            return inside_y & (np.abs(dx) <= half_width)
        raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")


@dataclasses.dataclass(frozen=True)
class Word:
    """A caption word: its text, role, referenced object (None if none) and binary relevance."""

    text: str
    role: str
    object_index: int | None

    @property
    def relevance(self) -> int:
        return int(self.role in CONTENT_ROLES)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A full scene: objects, background, and the caption's word structure."""

    objects: tuple[ShapeObject, ...]
    background: str = "white"
    prefix: tuple[str, ...] = ()
    joiners: tuple[str, ...] = ()
    name_background: bool = False

    @property
    def words(self) -> list[Word]:
        words = [Word(w, "filler", None) for w in self.prefix]
        for index, obj in enumerate(self.objects):
            if index > 0:
                words.append(Word(self.joiners[index - 1], "filler", None))
            words.append(Word("a", "filler", None))
            if obj.name_size:
                words.append(Word(obj.size, "size", index))
            words.append(Word(obj.colour, "colour", index))
            words.append(Word(obj.shape, "shape", index))
            if obj.name_position:
                phrase = POSITION_PHRASES[obj.position]
                words.extend(Word(w, "filler", None) for w in phrase[:-1])
                words.append(Word(phrase[-1], "position", index))
        if self.name_background:
            words.extend([Word("on", "filler", None), Word("a", "filler", None),
                          Word(self.background, "background", None), Word("background", "background", None)])
        return words

    @property
    def caption(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def relevance(self) -> np.ndarray:
        """Binary relevance per word, shape (n_words,)."""
        return np.array([w.relevance for w in self.words], dtype=np.int64)

    @property
    def held_out(self) -> bool:
        return any(is_held_out(o.colour, o.shape) for o in self.objects)

    def masks(self, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> np.ndarray:
        """Visible mask of every object, shape (n_objects, height, width), later objects on top."""
        out = np.stack([o.mask(height, width) for o in self.objects])
        for i in range(len(out) - 1):
            out[i] &= ~out[i + 1:].any(axis=0)
        return out

    def word_masks(self, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> list[np.ndarray | None]:
        """For each word, the mask of the object it names (None for filler/background words)."""
        masks = self.masks(height, width)
        return [None if w.object_index is None else masks[w.object_index] for w in self.words]

    def render(self, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> np.ndarray:
        """RGB image, uint8, shape (height, width, 3)."""
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:] = BACKGROUNDS[self.background]
        for obj, mask in zip(self.objects, self.masks(height, width)):
            image[mask] = COLOURS[obj.colour]
        return image


def _too_close(objects: Sequence[ShapeObject], gap: int = 2) -> bool:
    """True if any two objects' exact masks come within ``gap`` pixels (they must stay separable)."""
    from scipy import ndimage

    masks = [o.mask() for o in objects]
    grown = [ndimage.binary_dilation(m, iterations=gap) for m in masks]
    return any((grown[i] & masks[j]).any() for i in range(len(masks)) for j in range(i + 1, len(masks)))


def sample_scene(
    rng: np.random.Generator,
    *,
    split: str = "train",
    n_objects: int | None = None,
    count_weights: Sequence[float] = (0.35, 0.45, 0.20),
    p_name_size: float = 0.6,
    p_name_position: float = 0.75,
    p_background: float = 0.15,
    p_prefix: float = 0.3,
) -> Scene:
    """Draw a random scene.

    Args:
        rng: the only source of randomness.
        split: "train" (no held-out colour-shape pair), "heldout" (at least one held-out pair),
            or "any".
        n_objects: fixed object count (1-3), or None to draw it from ``count_weights``.
    """
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split must be 'train', 'heldout' or 'any', got {split!r}")
    if n_objects is not None and not 1 <= n_objects <= 3:
        raise ValueError(f"n_objects must be 1, 2 or 3, got {n_objects!r}")
    while True:
        count = n_objects or int(rng.choice([1, 2, 3], p=np.asarray(count_weights) / np.sum(count_weights)))
        slots = rng.permutation(list(POSITIONS))[:count]
        objects: list[ShapeObject] = []
        for slot in slots:
            cx, cy = POSITIONS[str(slot)]
            objects.append(ShapeObject(
                colour=str(rng.choice(list(COLOURS))),
                shape=str(rng.choice(SHAPES)),
                size=str(rng.choice(list(SIZES))),
                position=str(slot),
                x=cx + float(rng.uniform(-JITTER, JITTER)),
                y=cy + float(rng.uniform(-JITTER, JITTER)),
                name_size=bool(rng.random() < p_name_size),
                name_position=bool(rng.random() < p_name_position),
            ))
        if len(objects) > 1 and _too_close(objects):
            continue
        named_bg = bool(rng.random() < p_background)
        scene = Scene(
            objects=tuple(objects),
            background=str(rng.choice(NAMED_BACKGROUNDS)) if named_bg else "white",
            prefix=PREFIXES[int(rng.integers(1, len(PREFIXES)))] if rng.random() < p_prefix else (),
            joiners=tuple(str(rng.choice(JOINERS)) for _ in range(count - 1)),
            name_background=named_bg,
        )
        if split == "any" or (split == "heldout") == scene.held_out:
            return scene
