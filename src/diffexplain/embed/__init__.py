"""Image embedders and the similarities between their embeddings."""

from .embedders import (
    EMBEDDERS, EfficientNetEmbedder, Embedder, LatentEmbedder, PixelEmbedder, TransformersEmbedder, make_embedder,
)
from .similarity import SIMILARITIES, pairwise_similarity, wasserstein_1d

__all__ = ["EMBEDDERS", "SIMILARITIES", "EfficientNetEmbedder", "Embedder", "LatentEmbedder", "PixelEmbedder",
           "TransformersEmbedder", "make_embedder", "pairwise_similarity", "wasserstein_1d"]
