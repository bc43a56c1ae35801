"""Flux.1: a pooled CLIP vector and a T5 context, double-stream joint attention (text tokens first,
rotary positions) then single-stream blocks over [text; image]; latents packed into tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Family, register

if TYPE_CHECKING:
    import torch

    from ..defaults import PipelineDefaults


@register
class Flux(Family):
    name = "flux"
    title = "Flux.1"
    classes = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline", "FluxFillPipeline", "FluxKontextPipeline")
    denoiser_classes = ("FluxTransformer2DModel",)
    denoiser = "transformer"
    attention = "joint_text_first"
    num_inference_steps = 28
    guidance_scale = 3.5
    roles = (("text_encoder", None, "tokenizer", "CLIP"), ("text_encoder_2", 0, "sequence", "T5"))
    timestep_scale = 1000.0  # the pipeline passes t / 1000

    def attention_layers(self, denoiser: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, str]]:
        found: dict[str, tuple[torch.nn.Module, str]] = {}
        for index, block in enumerate(getattr(denoiser, "transformer_blocks", [])):
            found[f"transformer_blocks.{index}.attn"] = (block.attn, "joint_text_first")
        for index, block in enumerate(getattr(denoiser, "single_transformer_blocks", [])):
            found[f"single_transformer_blocks.{index}.attn"] = (block.attn, "single")
        for module, _ in found.values():
            if getattr(module, "fused_projections", False):
                raise ValueError(f"{type(denoiser).__name__} has fused q/k/v projections; call "
                                 "transformer.unfuse_qkv() before recording attention")
        return found

    def latent_grid(self, sample: torch.Tensor, kwargs: dict[str, Any]) -> tuple[tuple[int, int], int | None]:
        # packed tokens: the grid is in the image ids; Kontext appends its reference image with ids[:, 0] == 1
        ids = kwargs["img_ids"]
        ids = ids[0] if ids.ndim == 3 else ids
        generated = ids[ids[:, 0] == 0]
        return (int(generated[:, 1].max()) + 1, int(generated[:, 2].max()) + 1), int(generated.shape[0])

    def pixels_per_latent(self, pipe: Any) -> int:
        return 2 * int(getattr(pipe, "vae_scale_factor", 8))  # 2x2 latent patches per token

    def repeats_call_for_negative(self) -> bool:
        return True  # true CFG: the prompt's call, then the negative prompt's, at the same timestep

    def batch_layout(self, pipe: Any, guidance_scale: float | None = None,
                     options: dict[str, Any] | None = None) -> str:
        return "none"  # guidance-distilled: one row per image (true CFG runs separate calls)

    def encode(self, adapter: Any, texts: Sequence[str]) -> dict[str, Any]:
        import torch

        with torch.no_grad():  # encodings only: no graph kept
            # guidance is an input of the distilled model: no negative encodings
            length = adapter.pipeline_kwargs.get("max_sequence_length")
            extra = {} if length is None else dict(max_sequence_length=length)
            embeds, pooled, _ = adapter.pipe.encode_prompt(list(texts), None, device=adapter.device,
                                                           num_images_per_prompt=1, **extra)
            return dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)

    def sampler_defaults(self, pipe: Any, defaults: PipelineDefaults) -> PipelineDefaults:
        if not pipe.transformer.config.get("guidance_embeds", True) and defaults.name == "":
            # Flux.1 schnell: timestep-distilled, 4 steps, no guidance input
            return dataclasses.replace(defaults, num_inference_steps=4, guidance_scale=0.0)
        return defaults
