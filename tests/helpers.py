"""Tiny real diffusers pipelines with random weights, built and saved by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import torch


def _unet(in_channels: int, height: int, width: int, cross_attention_dim: int = 32):
    from diffusers import UNet2DConditionModel

    # square: an int, as some pipelines compare sample_size to an int
    sample_size = height // 2 if height == width else (height // 2, width // 2)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2, cross_attention_dim=cross_attention_dim, attention_head_dim=2,
        norm_num_groups=8)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, mid_block_add_attention=False)


def _text(directory: Path):
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffexplain_shapes import pipelines as shapes

    tokenizer = shapes.build_tokenizer(directory / "_tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=shapes.MAX_TOKENS, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    return tokenizer, text_encoder


def _save_and_reload(pipe, path: Path):
    pipe.save_pretrained(path)
    loaded = type(pipe).from_pretrained(path, local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def tiny_text2image(directory: Path, *, seed: int = 0, height: int = 16, width: int = 16):
    """A random-weight StableDiffusionPipeline with the shapes tokenizer, saved to ``directory``
    and reloaded with ``from_pretrained`` (the path users take). Latent factor 2.

    Returns:
        (reloaded pipeline, original pipeline, saved path).
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from diffexplain_shapes import pipelines as shapes

    torch.manual_seed(seed)
    tokenizer, text_encoder = _text(directory)
    pipe = StableDiffusionPipeline(
        vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(4, height, width),
        scheduler=DDIMScheduler(**shapes.scheduler_config()), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    path = directory / "tiny-sd"
    return _save_and_reload(pipe, path), pipe, path


def tiny_image_pipeline(directory: Path, kind: str, *, seed: int = 0, height: int = 16, width: int = 16):
    """A random-weight pix2pix / img2img / inpaint pipeline, saved and reloaded."""
    from diffusers import (
        DDIMScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionInstructPix2PixPipeline,
    )

    from diffexplain_shapes import pipelines as shapes

    torch.manual_seed(seed)
    tokenizer, text_encoder = _text(directory)
    cls, channels = dict(pix2pix=(StableDiffusionInstructPix2PixPipeline, 8),
                         img2img=(StableDiffusionImg2ImgPipeline, 4),
                         inpaint=(StableDiffusionInpaintPipeline, 9))[kind]
    pipe = cls(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(channels, height, width),
               scheduler=DDIMScheduler(**shapes.scheduler_config()), safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
    return _save_and_reload(pipe, directory / f"tiny-{kind}")


def tiny_paint_by_example(directory: Path, *, seed: int = 0, height: int = 16, width: int = 16):
    """A random-weight PaintByExamplePipeline (tiny CLIP vision encoder, one reference token)."""
    from diffusers import DDIMScheduler, PaintByExamplePipeline
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    from diffexplain_shapes import pipelines as shapes

    torch.manual_seed(seed)
    encoder = PaintByExampleImageEncoder(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=32), proj_size=32)
    pipe = PaintByExamplePipeline(
        vae=_vae(), image_encoder=encoder, unet=_unet(9, height, width, cross_attention_dim=32),
        scheduler=DDIMScheduler(**shapes.scheduler_config()), safety_checker=None,
        feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        requires_safety_checker=False)
    from diffexplain.models.loading import load_paint_by_example

    pipe.save_pretrained(directory / "tiny-pbe")
    return load_paint_by_example(directory / "tiny-pbe")
