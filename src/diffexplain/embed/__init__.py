"""Image embedders and the similarities between their embeddings."""

from .embedders import (
    DEFAULT_EMBEDDER,
    EMBEDDERS,
    EfficientNetEmbedder,
    Embedder,
    LatentEmbedder,
    PixelEmbedder,
    TransformersEmbedder,
    efficientnet_size,
    make_embedder,
)
from .similarity import DEFAULT_SIMILARITY, SIMILARITIES, pairwise_similarity, wasserstein_1d

__all__ = [
    "DEFAULT_EMBEDDER", "DEFAULT_SIMILARITY", "EMBEDDERS", "SIMILARITIES", "EfficientNetEmbedder", "Embedder",
    "LatentEmbedder", "PixelEmbedder", "TransformersEmbedder", "efficientnet_size", "make_embedder",
    "pairwise_similarity", "wasserstein_1d",
]
