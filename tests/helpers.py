"""Tiny real diffusers pipelines with random weights, built and saved by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_text2image(directory: Path, *, seed: int = 0, height: int = 16, width: int = 16):
    """A random-weight StableDiffusionPipeline with the shapes tokenizer, saved to ``directory``
    and reloaded with ``from_pretrained`` (the path users take). Latent factor 2."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffexplain.models import shapes

    torch.manual_seed(seed)
    tokenizer = shapes.build_tokenizer(directory / "_tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=shapes.MAX_TOKENS, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    unet = UNet2DConditionModel(
        sample_size=(height // 2, width // 2), in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2, cross_attention_dim=32, attention_head_dim=2,
        norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, mid_block_add_attention=False)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DDIMScheduler(**shapes.scheduler_config()), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    path = directory / "tiny-sd"
    pipe.save_pretrained(path)
    loaded = StableDiffusionPipeline.from_pretrained(path, local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    return loaded, pipe, path
