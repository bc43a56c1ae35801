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


def record_views(adapter: Adapter, prompt: str, seed: int) -> tuple[np.ndarray, AttentionMaps, AttentionMaps | None]:
    """One generation recording both views where the family has them: the attention maps and, on
    families with joint-attention blocks, ConceptAttention's output-space maps (both recorders only
    observe, so the image is the one ``record_prompt`` gives).

    Returns:
        (image uint8 (H, W, 3), attention maps, output-space maps or None on families without joint blocks).
    """
    import contextlib

    try:
        concept: ConceptAttentionRecorder | None = ConceptAttentionRecorder(adapter)
    except ValueError:  # no joint blocks (UNet families): the attention view only
        concept = None
    with AttentionRecorder(adapter) as recorder, concept if concept is not None else contextlib.nullcontext():
        image = adapter.generate([prompt], [seed])[0]
    return image, recorder.maps(), None if concept is None else concept.maps()
