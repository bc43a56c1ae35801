"""Regions <-> words (Gupta & Kanoria): segment the generated image, then score every (region, word)
pair by the word's attention mass inside the region and by how much the region's masked image
resembles the image generated from that word alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEGMENTERS = ("slic", "felzenszwalb", "kmeans_attention", "sam")


@dataclasses.dataclass(frozen=True)
class RegionWordMatch:
    """Segmentation and scores.

    Attributes:
        labels: int (H, W) region id per pixel, 0..R-1.
        words: the words scored.
        attention_scores: (R, n_words) share of each word's attention mass in each region,
            divided by the region's area share (1 = chance); NaN where not computed.
        embedding_scores: (R, n_words) cosine similarity between the region's masked-image
            embedding and the embedding of the image generated from the word alone; or None.
        best_word: per region, the index of the word with the highest attention score.
        best_region: per word, the index of the region with the highest attention score.
    """

    labels: np.ndarray
    words: tuple[str, ...]
    attention_scores: np.ndarray
    embedding_scores: np.ndarray | None
    best_word: np.ndarray
    best_region: np.ndarray


def segment(image: np.ndarray, method: str = "slic", *, n_segments: int = 8, heatmaps: np.ndarray | None = None,
            sam_path: str | None = None, seed: int = 0) -> np.ndarray:
    """Segment a uint8 (H, W, 3) image into regions; returns int labels (H, W), 0..R-1.

    Args:
        method: "slic" or "felzenszwalb" (scikit-image superpixels), "kmeans_attention" (k-means
            over the per-pixel vector of word heatmaps, needs ``heatmaps`` (n_words, H, W)), or
            "sam" (Segment Anything through transformers, needs a local ``sam_path``).
    """
    if method not in SEGMENTERS:
        raise ValueError(f"method must be one of {SEGMENTERS}, got {method!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if method == "slic":
        from skimage.segmentation import slic

        labels = slic(image, n_segments=n_segments, compactness=10, start_label=0)
    elif method == "felzenszwalb":
        from skimage.segmentation import felzenszwalb

        labels = felzenszwalb(image, scale=100 * max(1, image.shape[0] // 64), sigma=0.5,
                              min_size=max(8, image.size // 3 // 200))
    elif method == "kmeans_attention":
        if heatmaps is None:
            raise ValueError("method 'kmeans_attention' needs heatmaps of shape (n_words, H, W)")
        heatmaps = np.asarray(heatmaps, dtype=np.float64)
        if heatmaps.shape[1:] != image.shape[:2]:
            raise ValueError(f"heatmaps must be (n_words, {image.shape[0]}, {image.shape[1]}), got {heatmaps.shape}")
        from sklearn.cluster import KMeans

        features = heatmaps.reshape(len(heatmaps), -1).T
        features = features / np.maximum(features.max(axis=0, keepdims=True), 1e-12)
        labels = KMeans(n_clusters=n_segments, n_init=4, random_state=seed).fit_predict(features)
        labels = labels.reshape(image.shape[:2])
    else:
        labels = _sam_segments(image, sam_path)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(image.shape[:2]).astype(np.int64)


def _sam_segments(image: np.ndarray, sam_path: str | None) -> np.ndarray:
    """Segment Anything on a grid of point prompts, masks painted largest first."""
    if sam_path is None or not Path(sam_path).exists():
        raise ValueError(f"sam_path must be an existing local directory with SAM weights, got {sam_path!r}")
    import torch
    from transformers import SamModel, SamProcessor

    processor = SamProcessor.from_pretrained(sam_path, local_files_only=True)
    model = SamModel.from_pretrained(sam_path, local_files_only=True).eval()
    height, width = image.shape[:2]
    grid = [[[float(x), float(y)]] for y in np.linspace(0, height - 1, 4) for x in np.linspace(0, width - 1, 4)]
    inputs = processor(images=image, input_points=[grid], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, multimask_output=False)
    masks = processor.image_processor.post_process_masks(
        outputs.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])[0][:, 0].numpy()
    labels = np.zeros((height, width), dtype=np.int64)
    for index in np.argsort([-m.sum() for m in masks]):
        labels[masks[index].astype(bool)] = index + 1
    return labels


def match_regions(labels: np.ndarray, heatmaps: np.ndarray, words: Sequence[str], *, image: np.ndarray | None = None,
                  word_images: np.ndarray | None = None, embedder: Any = None) -> RegionWordMatch:
    """Score every (region, word) pair.

    Args:
        labels: int (H, W) regions.
        heatmaps: (n_words, H, W) non-negative word heatmaps.
        words: the words, in heatmap order.
        image, word_images, embedder: for the embedding score, the generated image (H, W, 3),
            the images generated from each word alone (n_words, H, W, 3) and an embedder.
    """
    labels = np.asarray(labels)
    heatmaps = np.clip(np.asarray(heatmaps, dtype=np.float64), 0, None)
    if heatmaps.shape[1:] != labels.shape or len(heatmaps) != len(words):
        raise ValueError(f"heatmaps must have shape ({len(words)}, {labels.shape[0]}, {labels.shape[1]}), "
                         f"got {heatmaps.shape}")
    n_regions = int(labels.max()) + 1
    area = np.array([(labels == r).mean() for r in range(n_regions)])
    mass = np.stack([[h[labels == r].sum() for h in heatmaps] for r in range(n_regions)])
    mass = mass / np.maximum(heatmaps.reshape(len(words), -1).sum(axis=1), 1e-12)[None, :]
    attention_scores = mass / np.maximum(area[:, None], 1e-12)
    embedding_scores = None
    if image is not None and word_images is not None and embedder is not None:
        background = np.full_like(image, 255)
        masked = np.stack([np.where((labels == r)[..., None], image, background) for r in range(n_regions)])
        region_vectors = embedder.embed(masked.astype(np.uint8))
        word_vectors = embedder.embed(np.asarray(word_images, dtype=np.uint8))
        a = region_vectors / np.maximum(np.linalg.norm(region_vectors, axis=1, keepdims=True), 1e-12)
        b = word_vectors / np.maximum(np.linalg.norm(word_vectors, axis=1, keepdims=True), 1e-12)
        embedding_scores = a @ b.T
    return RegionWordMatch(labels=labels, words=tuple(words), attention_scores=attention_scores,
                           embedding_scores=embedding_scores, best_word=attention_scores.argmax(axis=1),
                           best_region=attention_scores.argmax(axis=0))
