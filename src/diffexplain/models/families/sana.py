"""Sana: a Gemma encoder behind an instruction prefix whose last positions the pipeline keeps,
cross-attention linear DiT."""

from __future__ import annotations

from .base import register
from .pixart import MaskedT5Family


@register
class Sana(MaskedT5Family):
    name = "sana"
    title = "Sana"
    classes = ("SanaPipeline",)
    denoiser_classes = ("SanaTransformer2DModel",)
    num_inference_steps = 20
    guidance_scale = 4.5
    instruction_prefix = True
    roles = (("text_encoder", 0, "sequence", "Gemma"),)
    call_options = ("clean_caption", "max_sequence_length", "complex_human_instruction")
