"""Image embedders and the similarities between their embeddings."""

from ..names import DEFAULT_EMBEDDER, DEFAULT_SIMILARITY, EMBEDDERS, SIMILARITIES
from .embedders import (
    EfficientNetEmbedder,
    Embedder,
    LatentEmbedder,
    PixelEmbedder,
    TransformersEmbedder,
    efficientnet_size,
    make_embedder,
)
from .similarity import pairwise_similarity, wasserstein_1d

__all__ = [
    "DEFAULT_EMBEDDER", "DEFAULT_SIMILARITY", "EMBEDDERS", "SIMILARITIES", "EfficientNetEmbedder", "Embedder",
    "LatentEmbedder", "PixelEmbedder", "TransformersEmbedder", "efficientnet_size", "make_embedder",
    "pairwise_similarity", "wasserstein_1d",
]
