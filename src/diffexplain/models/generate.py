"""Seeded batch generation from any diffusers text-to-image pipeline."""

from __future__ import annotations

from typing import Sequence

import torch


def _device(pipe) -> torch.device:
    return next(pipe.unet.parameters()).device


def generate_images(
    pipe,
    prompts: Sequence[str],
    *,
    seeds: Sequence[int],
    num_inference_steps: int,
    guidance_scale: float,
    output_type: str = "pil",
    **kwargs,
):
    """Generate one image per (prompt, seed) pair in a single batch.

    Each sample gets its own ``torch.Generator`` seeded with its seed, so an image depends only
    on its prompt and seed, never on what else is in the batch.

    Returns:
        A list of PIL images (``output_type="pil"``) or a float tensor (n, 3, H, W) in [0, 1]
        (``output_type="pt"``).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"prompts and seeds must have the same length, got {len(prompts)} and {len(seeds)}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    device = _device(pipe)
    generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    with torch.no_grad():
        out = pipe(list(prompts), generator=generators, num_inference_steps=num_inference_steps,
                   guidance_scale=guidance_scale, output_type=output_type, **kwargs)
    return out.images
