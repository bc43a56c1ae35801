"""SD3 / SD3.5: two CLIPs then T5 in one context, joint attention (MMDiT, image tokens first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from .base import Family, register


@register
class StableDiffusion3(Family):
    name = "sd3"
    title = "SD3 / SD3.5"
    classes = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline")
    denoiser_classes = ("SD3Transformer2DModel",)
    denoiser = "transformer"
    attention = "joint"
    num_inference_steps = 28
    guidance_scale = 7.0
    roles = (("text_encoder", 0, "tokenizer", "CLIP"), ("text_encoder_2", 0, "tokenizer", "CLIP"),
             ("text_encoder_3", "clip", "sequence", "T5"))

    def attention_layers(self, denoiser: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, str]]:
        from diffusers.models.attention_processor import Attention

        return {name: (module, "joint") for name, module in denoiser.named_modules()
                if isinstance(module, Attention) and getattr(module, "add_k_proj", None) is not None
                and not getattr(module, "is_cross_attention", False)}

    def encode(self, adapter: Any, texts: Sequence[str]) -> dict[str, Any]:
        import torch

        with torch.no_grad():  # encodings only: no graph kept
            guided = adapter.guidance_scale > 1
            length = adapter.pipeline_kwargs.get("max_sequence_length")
            extra = {} if length is None else dict(max_sequence_length=length)
            embeds, negative, pooled, negative_pooled = adapter.pipe.encode_prompt(
                list(texts), None, None, device=adapter.device, num_images_per_prompt=1,
                do_classifier_free_guidance=guided, **extra)
            out = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)
            if guided:
                out.update(negative_prompt_embeds=negative[:1], negative_pooled_prompt_embeds=negative_pooled[:1])
            return out

