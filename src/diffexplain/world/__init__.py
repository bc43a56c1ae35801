"""The shapes world: procedural scenes with captions, exact masks and known word relevance."""

from .captions import ParsedCaption, check_vocabulary, parse_caption
from .check import CheckResult, FoundObject, check, read_objects
from .scene import (
    BACKGROUNDS, COLOURS, IMAGE_SIZE, POSITIONS, ROLES, SHAPES, SIZES, Scene, ShapeObject, Word,
    is_held_out, sample_scene, vocabulary,
)

__all__ = [
    "BACKGROUNDS", "COLOURS", "IMAGE_SIZE", "POSITIONS", "ROLES", "SHAPES", "SIZES", "CheckResult",
    "FoundObject", "ParsedCaption", "Scene", "ShapeObject", "Word", "check", "check_vocabulary",
    "is_held_out", "parse_caption", "read_objects", "sample_scene", "vocabulary",
]
