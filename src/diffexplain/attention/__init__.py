"""Attention recording (observing forward hooks) and aggregation into per-word heatmaps."""

from ..models.families import find_cross_attention
from .maps import AttentionMaps, overlay, threshold, word_token_spans
from .record import record_prompt
from .recorder import AttentionRecorder

__all__ = ["AttentionMaps", "AttentionRecorder", "find_cross_attention", "overlay", "record_prompt",
           "threshold", "word_token_spans"]
