"""Reading captions back: vocabulary checks and a parser from caption text to expected objects."""

from __future__ import annotations

import dataclasses

from .scene import COLOURS, NAMED_BACKGROUNDS, POSITIONS, SHAPES, SIZES, vocabulary


@dataclasses.dataclass
class ExpectedObject:
    """What a caption says about one object; None where the caption is silent."""

    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None


@dataclasses.dataclass
class ParsedCaption:
    objects: list[ExpectedObject]
    background: str | None  # None = not named (white by default)


def check_vocabulary(prompt: str, argument: str = "prompt", vocab=None) -> list[str]:
    """Split a prompt into words and raise ValueError naming any word outside ``vocab`` (default:
    the world's caption vocabulary; the edit models add ``edits.edit_vocabulary()``)."""
    if not isinstance(prompt, str):
        raise ValueError(f"{argument} must be a string, got {type(prompt).__name__}")
    words = prompt.lower().split()
    vocab = list(vocab) if vocab is not None else vocabulary()
    unknown = [w for w in words if w not in vocab]
    if unknown:
        raise ValueError(
            f"{argument} contains word(s) the shapes model does not know: {', '.join(repr(w) for w in unknown)}. "
            f"Vocabulary: {' '.join(vocab)}"
        )
    return words


_ORDER = {"size": 0, "colour": 1, "shape": 2}


def parse_caption(caption: str) -> ParsedCaption:
    """Parse a (possibly perturbed) shapes caption into the objects it describes.

    Size, colour and shape words attach to the object being described while they come in the
    order size < colour < shape; any other order starts a new object. A position word attaches to
    the latest object. Filler words are ignored, so word-dropped captions parse too.
    """
    words = check_vocabulary(caption, "caption")
    objects: list[ExpectedObject] = []
    current: ExpectedObject | None = None
    last_kind = -1
    background: str | None = None
    for word in words:
        kind = None
        if word in SIZES:
            kind = "size"
        elif word in COLOURS:
            kind = "colour"
        elif word in SHAPES:
            kind = "shape"
        elif word in POSITIONS:
            if objects and objects[-1].position is None:
                objects[-1].position = word
            continue
        elif word in NAMED_BACKGROUNDS:
            background = word
            continue
        elif word in ("and", "with"):
            current, last_kind = None, -1
            continue
        else:
            continue
        if current is None or _ORDER[kind] <= last_kind:
            current = ExpectedObject()
            objects.append(current)
        setattr(current, kind, word)
        last_kind = _ORDER[kind]
    return ParsedCaption(objects=objects, background=background)
