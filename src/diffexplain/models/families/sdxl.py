"""SDXL: two CLIP encoders side by side in one context (and a pooled vector), cross-attention UNet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Family, register


@register
class StableDiffusionXL(Family):
    name = "sdxl"
    title = "SDXL"
    classes = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline",
               "StableDiffusionXLInstructPix2PixPipeline")
    denoiser_classes = ()  # the UNet class is Stable Diffusion's: its layers are found the same way
    num_inference_steps = 30
    guidance_scale = 5.0
    roles = (("text_encoder", 0, "tokenizer", "CLIP"), ("text_encoder_2", 0, "tokenizer", "CLIP"))

    def check_empty_embedding(self, adapter: Any, prompt: str) -> None:
        readings = adapter.readings(prompt)
        # one set of positions serves both encoders, so their splits must agree
        if len(readings) > 1 and readings[0].spans != readings[1].spans:
            raise ValueError("perturbation='empty_embedding' needs SDXL's two tokenizers to split the prompt alike; "
                             f"they give {list(readings[0].spans)} and {list(readings[1].spans)}")

    def encode(self, adapter: Any, texts: Sequence[str]) -> dict[str, Any]:
        import torch

        with torch.no_grad():  # encodings only: no graph kept
            guided = adapter.guidance_scale > 1
            embeds, negative, pooled, negative_pooled = adapter.pipe.encode_prompt(
                list(texts), device=adapter.device, num_images_per_prompt=1, do_classifier_free_guidance=guided)
            out = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)
            if guided:
                out.update(negative_prompt_embeds=negative[:1], negative_pooled_prompt_embeds=negative_pooled[:1])
            return out

