"""Edits of shapes scenes: (source scene, instruction, target scene) triples with ground truth.

Every instruction word has a role and a binary relevance: the words that say what to do and to
which object (the edit's verb where it carries the edit, the object's identifying words, the new
attribute) are content (1); politeness and grammar ("please", "could you", "the", "a", "make",
"to", "into") are filler (0). The changed region is the union of the edited object's masks
before and after the edit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .scene import (
    COLOURS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    Word,
    _too_close,
    sample_scene,
    vocabulary,
)

EDIT_KINDS = ("recolour", "reshape", "resize", "move", "remove", "add")
POLITE_PREFIXES: tuple[tuple[str, ...], ...] = ((), ("please",), ("could", "you"), ("can", "you", "please"))


@dataclasses.dataclass(frozen=True)
class Edit:
    """A source scene, an instruction, the target scene and the ground truth of the edit."""

    source: Scene
    target: Scene
    kind: str
    words: tuple[Word, ...]
    object_index: int  # index of the edited object in source (remove/recolour/...) or target (add)

    @property
    def instruction(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def relevance(self) -> np.ndarray:
        return np.array([w.relevance for w in self.words], dtype=np.int64)

    def changed_mask(self, height: int = 64, width: int = 64) -> np.ndarray:
        """Pixels the edit changes: the edited object's masks before and after, (H, W) bool."""
        masks = []
        if self.kind != "add":
            masks.append(self.source.objects[self.object_index].mask(height, width))
        if self.kind != "remove":
            index = self.object_index if self.kind != "add" else len(self.target.objects) - 1
            masks.append(self.target.objects[index].mask(height, width))
        return np.logical_or.reduce(masks)


def inpainted_relevance(scene: Scene, index: int) -> np.ndarray:
    """Ground truth for inpainting a scene's object ``index`` from the caption: (n_words,) int64.

    The masked object's colour, shape and size words are relevant (1); filler, position (the mask
    fixes it) and the visible objects' words are not (0).
    """
    return np.array([int(w.object_index == index and w.role in ("colour", "shape", "size")) for w in scene.words],
                    dtype=np.int64)


def edit_vocabulary() -> list[str]:
    """Words instructions can contain beyond the scene vocabulary."""
    return ["please", "could", "you", "can", "make", "turn", "into", "move", "to", "remove", "add", "it"]


def instruction_vocabulary() -> list[str]:
    """Every word the shapes edit model knows: the scene vocabulary, then ``edit_vocabulary()``."""
    return vocabulary() + edit_vocabulary()


def _reference(obj: ShapeObject, index: int) -> list[Word]:
    """'the red circle': colour and shape identify the object."""
    return [Word("the", "filler", None), Word(obj.colour, "colour", index), Word(obj.shape, "shape", index)]


def sample_edit(rng: np.random.Generator, *, kind: str | None = None, split: str = "train",
                max_objects: int = 2) -> Edit:
    """Draw an edit. Source objects have distinct (colour, shape) pairs so references are unique.

    Args:
        kind: one of EDIT_KINDS or None (uniform).
        split: "train" / "heldout" / "any", applied to source and target scenes alike: a held-out
            colour-shape pair appears in neither scene of a training edit.
    """
    if kind is not None and kind not in EDIT_KINDS:
        raise ValueError(f"kind must be one of {EDIT_KINDS}, got {kind!r}")
    while True:
        edit_kind = kind or str(rng.choice(EDIT_KINDS))
        n = int(rng.integers(1, max_objects + 1))
        source = sample_scene(rng, split="any", n_objects=n, p_name_size=1.0, p_name_position=1.0, p_background=0.0,
                              p_prefix=0.0)
        if len({(o.colour, o.shape) for o in source.objects}) != n:
            continue
        index = int(rng.integers(0, n))
        obj = source.objects[index]
        polite = [Word(w, "filler", None) for w in POLITE_PREFIXES[int(rng.integers(len(POLITE_PREFIXES)))]]
        objects = list(source.objects)
        if edit_kind == "recolour":
            new = str(rng.choice([c for c in COLOURS if c != obj.colour]))
            objects[index] = dataclasses.replace(obj, colour=new)
            words = polite + [Word("make", "filler", None)] + _reference(obj, index) + [Word(new, "colour", index)]
        elif edit_kind == "reshape":
            new = str(rng.choice([s for s in SHAPES if s != obj.shape]))
            objects[index] = dataclasses.replace(obj, shape=new)
            words = polite + [Word("turn", "filler", None)] + _reference(obj, index) + [
                Word("into", "filler", None), Word("a", "filler", None), Word(new, "shape", index)]
        elif edit_kind == "resize":
            new = "small" if obj.size == "big" else "big"
            objects[index] = dataclasses.replace(obj, size=new)
            words = polite + [Word("make", "filler", None)] + _reference(obj, index) + [Word(new, "size", index)]
        elif edit_kind == "move":
            free = [p for p in POSITIONS if p not in {o.position for o in source.objects}]
            new = str(rng.choice(free))
            x, y = POSITIONS[new]
            objects[index] = dataclasses.replace(obj, position=new, x=x, y=y)
            phrase = POSITION_PHRASES[new]
            words = polite + [Word("move", "filler", None)] + _reference(obj, index) + [
                Word("to", "filler", None), *[Word(w, "filler", None) for w in phrase[1:-1]],
                Word(phrase[-1], "position", index)]
        elif edit_kind == "remove":
            if n < 2:
                continue  # removing the only object leaves an empty caption
            del objects[index]
            words = polite + [Word("remove", "action", index)] + _reference(obj, index)
        else:
            if n >= max_objects + 1:
                continue
            free = [p for p in POSITIONS if p not in {o.position for o in source.objects}]
            slot = str(rng.choice(free))
            x, y = POSITIONS[slot]
            new_obj = ShapeObject(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)), str(rng.choice(list(SIZES))),
                                  slot, x, y)
            objects.append(new_obj)
            index = len(objects) - 1
            phrase = POSITION_PHRASES[slot]
            words = polite + [Word("add", "action", index), Word("a", "filler", None),
                              Word(new_obj.size, "size", index), Word(new_obj.colour, "colour", index),
                              Word(new_obj.shape, "shape", index),
                              *[Word(w, "filler", None) for w in phrase[:-1]], Word(phrase[-1], "position", index)]
        if len(objects) > 1 and _too_close(objects):
            continue
        target = dataclasses.replace(source, objects=tuple(objects), joiners=("and",) * (len(objects) - 1))
        edit = Edit(source=source, target=target, kind=edit_kind, words=tuple(words), object_index=index)
        held = source.held_out or target.held_out
        if split == "any" or (split == "heldout") == held:
            return edit
