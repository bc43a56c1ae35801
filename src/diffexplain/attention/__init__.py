"""Cross-attention recording (forward hooks) and aggregation into per-word heatmaps."""

from .maps import AttentionMaps, overlay, threshold, word_token_spans
from .recorder import AttentionRecorder, find_cross_attention, record_prompt

__all__ = ["AttentionMaps", "AttentionRecorder", "find_cross_attention", "overlay", "record_prompt",
           "threshold", "word_token_spans"]
