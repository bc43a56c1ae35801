"""Adapters for image-conditioned pipelines: InstructPix2Pix, img2img (also few-step turbo
use), inpainting (text explained, source image and mask fixed) and Paint-by-Example (reference
image, no text)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .adapter import PipelineAdapter, TextToImageAdapter, native_size
from .defaults import pipeline_defaults

ImageLike = str | Path | np.ndarray | Image.Image


def load_image(image: ImageLike, argument: str = "image") -> np.ndarray:
    """An RGB uint8 array (H, W, 3) from a path, a PIL image or an array; ValueError otherwise."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as handle:
                return np.asarray(handle.convert("RGB"))
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{argument} could not be read as an image: {str(image)!r} ({error})") from error
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"{argument} must be an RGB uint8 array (H, W, 3), got {array.dtype} {array.shape}")
    return array


def load_mask(mask: ImageLike, size: tuple[int, int], argument: str = "mask", threshold: float = 0.5,
              of: str = "the source image") -> np.ndarray:
    """A boolean mask (H, W). Grey or colour masks are converted to grey in [0, 1] and thresholded
    at ``threshold`` (documented, never silent: values strictly between 0 and 1 are counted in
    the adapter's settings)."""
    if isinstance(mask, (str, Path)):
        try:
            with Image.open(mask) as handle:
                array = np.asarray(handle.convert("L"), dtype=np.float64) / 255.0
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{argument} could not be read as an image: {str(mask)!r} ({error})") from error
    elif isinstance(mask, Image.Image):
        array = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    else:
        array = np.asarray(mask)
        if array.ndim == 3:
            array = array.mean(axis=2)
        array = array.astype(np.float64) / (255.0 if array.max() > 1 else 1.0)
    if array.shape != tuple(size):
        raise ValueError(f"{argument} must have {of}'s size {tuple(size)} (H, W), got {array.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return array >= threshold


class _Pasting:
    """``paste`` for adapters holding ``source`` (H, W, 3) uint8 and ``mask`` (H, W) bool or None."""

    source: np.ndarray
    mask: np.ndarray | None

    def paste(self, images: np.ndarray) -> np.ndarray:
        """The source with ``images`` (uint8 (n, H, W, 3)) inside the mask: what ``composite=True`` returns."""
        if self.mask is None:
            raise ValueError("paste needs an inpainting mask; this adapter has none")
        return np.where(self.mask[None, :, :, None], images, self.source[None])


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes() + str(array.shape).encode()).hexdigest()[:16]


class EditAdapter(_Pasting, TextToImageAdapter):
    """Explain the words of an edit instruction or caption while the source image (and mask)
    stay fixed: InstructPix2Pix (``image_guidance_scale``), img2img (``strength``; 1-4 steps for
    turbo-style models) and inpainting (``mask`` required).

    Args:
        pipe: a diffusers pipeline taking ``prompt`` and ``image`` (and ``mask_image``).
        image: the source image.
        mask: the region to repaint (inpainting pipelines; white = repaint).
        strength: img2img / inpainting strength, passed when the pipeline takes it.
        image_guidance_scale: InstructPix2Pix image guidance, passed when the pipeline takes it.
        mask_threshold: grey mask levels at or above it count as "repaint".
        composite: inpainting only: return the source outside the mask and the generation inside
            it (the pipeline redraws every pixel through its VAE), so explanations see only what
            the mask lets the words change.
        **kwargs: as ``TextToImageAdapter`` (sampler settings, batch size, vocabulary check).
    """

    takes_source = True

    def __init__(self, pipe: Any, *, image: ImageLike, mask: ImageLike | None = None,
                 strength: float | None = None,
                 image_guidance_scale: float | None = None, mask_threshold: float = 0.5, composite: bool = False,
                 pipeline_kwargs: dict[str, Any] | None = None, **kwargs):
        parameters = inspect.signature(pipe.__call__).parameters
        if "image" not in parameters:
            raise ValueError(f"pipe must take a source image; {type(pipe).__name__} does not")
        options = dict(image=image, mask=mask, strength=strength, image_guidance_scale=image_guidance_scale,
                       mask_threshold=mask_threshold, composite=composite, pipeline_kwargs=pipeline_kwargs, **kwargs)
        source = load_image(image, "image")
        extra: dict[str, Any] = dict(pipeline_kwargs or {})
        needs_mask = "mask_image" in parameters
        if needs_mask and mask is None:
            raise ValueError(f"{type(pipe).__name__} inpaints: a mask is required (mask=None given)")
        if mask is not None and not needs_mask:
            raise ValueError(f"{type(pipe).__name__} takes no mask; pass mask=None")
        if not isinstance(composite, bool):
            raise ValueError(f"composite must be True or False, got {composite!r}")
        if composite and not needs_mask:
            raise ValueError(f"composite=True pastes the generation inside an inpainting mask; "
                             f"{type(pipe).__name__} takes no mask")
        self.source, self.composite = source, composite
        self.mask = load_mask(mask, source.shape[:2], threshold=mask_threshold) \
            if needs_mask and mask is not None else None
        if self.mask is not None and not self.mask.any():
            raise ValueError("mask is all black (nothing at or above the threshold): the pipeline would repaint "
                             "nothing, so no word could change the image; white marks the region to repaint")
        if strength is not None:
            if "strength" not in parameters:
                raise ValueError(f"{type(pipe).__name__} takes no strength")
            if not 0.0 < strength <= 1.0:
                raise ValueError(f"strength must be in (0, 1], got {strength}")
            extra["strength"] = float(strength)
        if image_guidance_scale is not None:
            if "image_guidance_scale" not in parameters:
                raise ValueError(f"{type(pipe).__name__} takes no image_guidance_scale")
            extra["image_guidance_scale"] = float(image_guidance_scale)
        if kwargs.get("height") is None and kwargs.get("width") is None:
            # a denoiser that states its sample size (UNets, most DiTs) generates at that size only;
            # Flux states none and runs at the source's size if its latents pack evenly
            native = native_size(pipe, stated_only=True)
            factor = getattr(pipe, "vae_scale_factor", 8) * (2 if hasattr(pipe, "_pack_latents") else 1)
            if native is None and (source.shape[0] % factor or source.shape[1] % factor):
                raise ValueError(f"image is {source.shape[0]}x{source.shape[1]} (H x W); {type(pipe).__name__} "
                                 f"needs sides that are multiples of {factor}: resize or crop it")
            if native is not None and source.shape[:2] != native:
                raise ValueError(f"image is {source.shape[0]}x{source.shape[1]} (H x W) but the model generates "
                                 f"{native[0]}x{native[1]}: resize the image to that size, or pass height and width "
                                 "(--height/--width) to run the model at the image's size")
        kwargs["height"] = kwargs.get("height") or source.shape[0]
        kwargs["width"] = kwargs.get("width") or source.shape[1]
        super().__init__(pipe, pipeline_kwargs=extra, **kwargs)
        self._accepts_size = "height" in parameters
        self._options = options

    def size_note(self) -> str | None:
        """What size the pipeline runs at, when it is not the source's: Flux Kontext resizes its
        reference image to about a megapixel unless ``_auto_resize=False`` (minutes per image on a CPU)."""
        parameters = inspect.signature(self.pipe.__call__).parameters
        if "_auto_resize" in parameters and self.pipeline_kwargs.get("_auto_resize", True):
            return (f"{type(self.pipe).__name__} resizes the {self.source.shape[1]}x{self.source.shape[0]} source to "
                    "about one megapixel before reading it (slow on a CPU); --pipeline-arg _auto_resize=false keeps "
                    "its size")
        return None

    def settings(self) -> dict[str, Any]:
        settings = super().settings()
        settings["source_sha256"] = _digest(self.source)
        if self.mask is not None:
            settings["mask_sha256"] = _digest(self.mask)
            settings["composite"] = self.composite
        return settings

    def _run(self, seeds: Sequence[int], **inputs) -> np.ndarray:
        n = len(seeds)
        inputs["image"] = [Image.fromarray(self.source)] * n
        if self.mask is not None:
            inputs["mask_image"] = [Image.fromarray((self.mask * 255).astype(np.uint8))] * n
        size = dict(height=self.height, width=self.width) if self._accepts_size else {}
        images = self.call_pipeline(seeds, num_inference_steps=self.num_inference_steps,
                                    guidance_scale=self.guidance_scale, **size, **inputs, **self.pipeline_kwargs)
        return self.paste(images) if self.composite else images


class PaintByExampleAdapter(_Pasting, PipelineAdapter):
    """Generate from a Paint-by-Example pipeline: source image, mask and reference fixed, seeds vary.

    The pipeline redraws the whole image (outside the mask too, through its VAE and from the
    masked-image latents); ``composite=True`` returns the source outside the mask and the
    generation inside it, the usual way an insertion is used.
    """

    def __init__(self, pipe: Any, *, image: ImageLike, mask: ImageLike | None, reference: ImageLike | None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 mask_threshold: float = 0.5, composite: bool = False):
        if getattr(pipe, "image_encoder", None) is None or getattr(pipe, "unet", None) is None:
            raise ValueError("pipe must be a Paint-by-Example pipeline with an image_encoder; "
                             f"got {type(pipe).__name__}")
        if reference is None:
            raise ValueError("Paint-by-Example needs a reference image (reference=None given)")
        if mask is None:
            raise ValueError("Paint-by-Example needs a mask of the region to fill (mask=None given)")
        defaults = pipeline_defaults(pipe)
        num_inference_steps = defaults.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self.pipe = pipe
        self.source = load_image(image, "image")
        self.mask: np.ndarray = load_mask(mask, self.source.shape[:2], threshold=mask_threshold)
        self.reference = load_image(reference, "reference")
        self.num_inference_steps, self.guidance_scale = int(num_inference_steps), float(guidance_scale)
        self.height, self.width = self.source.shape[:2]
        if not isinstance(composite, bool):
            raise ValueError(f"composite must be True or False, got {composite!r}")
        self.composite = composite

    def settings(self) -> dict[str, Any]:
        return dict(num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                    composite=self.composite,
                    source_sha256=_digest(self.source), mask_sha256=_digest(self.mask),
                    reference_sha256=_digest(self.reference), scheduler=type(self.pipe.scheduler).__name__,
                    **self.compute_settings())

    def generate(self, seeds: Sequence[int]) -> np.ndarray:
        """uint8 (n, H, W, 3), one image per seed."""
        n = len(seeds)
        images = self.call_pipeline(seeds, example_image=[Image.fromarray(self.reference)] * n,
                                    image=[Image.fromarray(self.source)] * n,
                                    mask_image=[Image.fromarray((self.mask * 255).astype(np.uint8))] * n,
                                    num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                                    height=self.height, width=self.width)
        return self.paste(images) if self.composite else images
