"""One call that generates a prompt and returns its attention maps, in either view."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .concept import ConceptAttentionRecorder
from .recorder import AttentionRecorder

if TYPE_CHECKING:
    from ..protocols import Adapter
    from .maps import AttentionMaps

VIEWS = ("attention", "output")


def record_prompt(adapter: Adapter, prompt: str, seed: int, *, view: str = "attention") -> \
        tuple[np.ndarray, AttentionMaps]:
    """Generate ``prompt`` with image seed ``seed`` while recording its attention.

    Args:
        adapter: a ``TextToImageAdapter`` (or ``EditAdapter``); it validates and locates the words.
        prompt: the text.
        seed: the generation's seed.
        view: "attention" (the attention probabilities) or "output" (output-space maps of MMDiT
            joint blocks, after ConceptAttention: ``concept.ConceptAttentionRecorder``).

    Returns:
        (image uint8 (H, W, 3), ``AttentionMaps`` of that generation).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    recorder_class = ConceptAttentionRecorder if view == "output" else AttentionRecorder
    with recorder_class(adapter) as recorder:
        image = adapter.generate([prompt], [seed])[0]
    return image, recorder.maps()
