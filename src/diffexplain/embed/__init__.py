"""Image embedders and the similarities between their embeddings."""

from .embedders import (
    DEFAULT_EMBEDDER, EMBEDDERS, EfficientNetEmbedder, Embedder, LatentEmbedder, PixelEmbedder, TransformersEmbedder,
    efficientnet_size, make_embedder,
)
from .similarity import SIMILARITIES, pairwise_similarity, wasserstein_1d

__all__ = ["DEFAULT_EMBEDDER", "EMBEDDERS", "SIMILARITIES", "EfficientNetEmbedder", "Embedder", "LatentEmbedder",
           "PixelEmbedder", "TransformersEmbedder", "efficientnet_size", "make_embedder", "pairwise_similarity",
           "wasserstein_1d"]
