"""PixArt-α / Σ: one T5 encoder with a padding mask, cross-attention DiT; the pipeline cleans and
lower-cases captions before tokenising."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Family, register


class MaskedT5Family(Family):
    """One T5-like encoder with a padding mask, whose ``__call__`` defaults differ from ``encode_prompt``'s."""

    denoiser = "transformer"
    roles = (("text_encoder", 0, "sequence", "T5"),)
    call_options: tuple[str, ...] = ("clean_caption", "max_sequence_length")

    def encode(self, adapter: Any, texts: Sequence[str]) -> dict[str, Any]:
        import torch

        with torch.no_grad():  # encodings only: no graph kept
            # the __call__ defaults, which encode_prompt lacks or differs from (PixArt cleans captions by
            # default in __call__, not in encode_prompt; Sana's instruction prefix and window)
            from ..words import call_default

            options = {key: call_default(adapter.pipe, key, adapter.pipeline_kwargs) for key in self.call_options}
            guided = adapter.guidance_scale > 1
            embeds, mask, negative, negative_mask = adapter.pipe.encode_prompt(
                list(texts), do_classifier_free_guidance=guided, device=adapter.device, num_images_per_prompt=1,
                **options)
            out = dict(prompt_embeds=embeds, prompt_attention_mask=mask)
            if guided:
                out.update(negative_prompt_embeds=negative[:1], negative_prompt_attention_mask=negative_mask[:1])
            return out

@register
class PixArt(MaskedT5Family):
    name = "pixart"
    title = "PixArt-α / Σ"
    classes = ("PixArtAlphaPipeline", "PixArtSigmaPipeline")
    denoiser_classes = ("PixArtTransformer2DModel",)
    num_inference_steps = 20
    guidance_scale = 4.5
