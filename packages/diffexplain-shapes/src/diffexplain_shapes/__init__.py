"""The shapes world and its trained pipelines: diffexplain's embedded, offline testbed.

Procedural scenes of coloured shapes with captions, exact object masks and known word relevance
(``sample_scene``, ``check``), instruction edits (``edits``), editing-task inputs (``tasks``), and
small diffusers pipelines trained on them whose weights ship here (``pipelines.load``).
"""

from .captions import ParsedCaption, check_vocabulary, parse_caption
from .check import CheckResult, FoundObject, check, read_objects
from .pipelines import PIPELINES, load, training_record, weights_path
from .scene import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    POSITIONS,
    ROLES,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    Word,
    is_held_out,
    sample_scene,
    vocabulary,
)

__all__ = [
    "BACKGROUNDS", "COLOURS", "IMAGE_SIZE", "PIPELINES", "POSITIONS", "ROLES", "SHAPES", "SIZES", "CheckResult",
    "FoundObject", "ParsedCaption", "Scene", "ShapeObject", "Word", "check", "check_vocabulary",
    "is_held_out", "load", "parse_caption", "read_objects", "sample_scene", "training_record", "vocabulary",
    "weights_path",
]
