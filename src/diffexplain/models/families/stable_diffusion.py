"""Stable Diffusion 1.x / 2.x (and Alt Diffusion, LCM): one CLIP encoder, cross-attention UNet."""

from __future__ import annotations

from .base import Family, register


@register
class StableDiffusion(Family):
    name = "sd"
    title = "Stable Diffusion 1.x / 2.x"
    classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
               "StableDiffusionInstructPix2PixPipeline", "AltDiffusionPipeline", "AltDiffusionImg2ImgPipeline",
               "LatentConsistencyModelPipeline", "LatentConsistencyModelImg2ImgPipeline")
    denoiser_classes = ("UNet2DConditionModel",)
    num_inference_steps = 20
    guidance_scale = 7.5
