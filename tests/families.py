"""Tiny random-weight pipelines of every model family diffexplain explains, built offline and saved
with ``save_pretrained`` / reloaded with ``from_pretrained`` (the path a user's local folder takes).

Each tokenizer behaves as the family's real one where word location can go wrong
(``tests.tokenizers``): CLIP's lower-casing BPE with multi-piece words and a 77 window, a
case-sensitive T5 unigram, a Gemma BPE whose words tokenize differently alone and after a space.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers import _save_and_reload, _unet, _vae
from tests.tokenizers import clip_bpe, gemma_bpe, t5_unigram


def _t5(directory: Path, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_unigram(directory / "_t5_tokenizer")
    encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=64, num_layers=1,
                                      num_heads=2, relative_attention_num_buckets=8, pad_token_id=0,
                                      eos_token_id=1, decoder_start_token_id=0))
    return tokenizer, encoder


def _clip(directory: Path, projection_dim: int | None = None):
    """CLIP's BPE and a tiny CLIP text encoder (with a projection when ``projection_dim`` is given)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_bpe(directory / "_clip_tokenizer")
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1, projection_dim=projection_dim or 32)
    return tokenizer, (CLIPTextModelWithProjection if projection_dim else CLIPTextModel)(config)


def _clip_projection(directory: Path, projection_dim: int = 32):
    return _clip(directory, projection_dim)


def tiny_sd(directory: Path, seed: int = 0):
    """Stable Diffusion 1.x / 2.x with CLIP's BPE (the shapes pipelines' tokenizer is word-level)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    torch.manual_seed(seed)
    tokenizer, text_encoder = _clip(directory)
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(4, 16, 16),
                                   scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return _save_and_reload(pipe, directory / "sd")


def _sdxl(directory: Path, cls_name: str, in_channels: int, seed: int, **extra):
    """An SDXL-family pipeline: two CLIP encoders (one pooled) and a UNet with SDXL's added time ids."""
    import diffusers
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    tokenizer, text_encoder = _clip(directory)
    tokenizer_2, text_encoder_2 = _clip_projection(directory / "2")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=2, norm_num_groups=8, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8,
        transformer_layers_per_block=1, use_linear_projection=True)
    pipe = getattr(diffusers, cls_name)(vae=_vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                                        scheduler=EulerDiscreteScheduler(), **extra)
    return _save_and_reload(pipe, directory / cls_name)


def tiny_sdxl(directory: Path, seed: int = 0):
    return _sdxl(directory, "StableDiffusionXLPipeline", 4, seed, force_zeros_for_empty_prompt=True)


def tiny_sdxl_pix2pix(directory: Path, seed: int = 0):
    """SDXL InstructPix2Pix: the SDXL parts with an 8-channel UNet (noise + source latents)."""
    return _sdxl(directory, "StableDiffusionXLInstructPix2PixPipeline", 8, seed)


def variant(pipe, class_name: str, directory: Path):
    """The same components as another pipeline of the family (img2img, inpainting, Kontext), saved and reloaded."""
    import inspect

    import diffusers

    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    built = cls(**{k: v for k, v in pipe.components.items() if k in accepted})
    return _save_and_reload(built, directory / class_name)


def tiny_sd3(directory: Path, seed: int = 0, t5: bool = True):
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(seed)
    tokenizer, text_encoder = _clip_projection(directory)
    tokenizer_2, text_encoder_2 = _clip_projection(directory / "2")
    tokenizer_3, text_encoder_3 = _t5(directory, d_model=64) if t5 else (None, None)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=1, in_channels=16, out_channels=16, num_layers=2,
                                        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=64,
                                        caption_projection_dim=16, pooled_projection_dim=64, pos_embed_max_size=16,
                                        qk_norm="rms_norm", dual_attention_layers=(0,))  # SD3.5's QK norms, MMDiT-X
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        norm_num_groups=4, mid_block_add_attention=False, shift_factor=0.0, scaling_factor=1.0,
                        use_quant_conv=False, use_post_quant_conv=False)  # 16 latent channels, as SD3's
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                                    text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                                    tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)
    if not t5:  # diffusers' own from_pretrained needs the absent T5 passed as None; load_pipeline does that
        from diffexplain.models.loading import load_pipeline

        pipe.save_pretrained(directory / "sd3")
        return load_pipeline(str(directory / "sd3"))
    return _save_and_reload(pipe, directory / "sd3")


def tiny_flux(directory: Path, seed: int = 0):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    tokenizer, text_encoder = _clip(directory)
    tokenizer_2, text_encoder_2 = _t5(directory, d_model=32)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32,
                                         axes_dims_rope=(4, 4, 8), guidance_embeds=True)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        norm_num_groups=4, mid_block_add_attention=False, shift_factor=0.0, scaling_factor=1.0,
                        use_quant_conv=False, use_post_quant_conv=False)
    pipe = FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                        tokenizer_2=tokenizer_2)
    return _save_and_reload(pipe, directory / "flux")


def tiny_flux_fill(directory: Path, seed: int = 0):
    """Flux Fill: the transformer also reads the packed masked-image latents (4) and mask (16)."""
    from diffusers import FluxFillPipeline, FluxTransformer2DModel

    flux = tiny_flux(directory, seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=24, out_channels=4, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32,
                                         axes_dims_rope=(4, 4, 8), guidance_embeds=True)
    pipe = FluxFillPipeline(transformer=transformer, scheduler=flux.scheduler, vae=flux.vae,
                            text_encoder=flux.text_encoder, tokenizer=flux.tokenizer,
                            text_encoder_2=flux.text_encoder_2, tokenizer_2=flux.tokenizer_2)
    return _save_and_reload(pipe, directory / "flux_fill")


def tiny_pixart(directory: Path, seed: int = 0):
    from diffusers import DDIMScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    torch.manual_seed(seed)
    tokenizer, text_encoder = _t5(directory, d_model=32)
    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=2, caption_channels=32,
        in_channels=4, cross_attention_dim=16, out_channels=8, attention_bias=True, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    pipe = PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_vae(), transformer=transformer,
                               scheduler=DDIMScheduler())
    return _save_and_reload(pipe, directory / "pixart")


FAMILIES = {"sd": tiny_sd, "sdxl": tiny_sdxl, "sd3": tiny_sd3, "flux": tiny_flux, "pixart": tiny_pixart}


def _gemma(directory: Path, hidden: int = 8):
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = gemma_bpe(directory / "_gemma_tokenizer")
    encoder = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=16,
                                       num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                       head_dim=4, pad_token_id=0, bos_token_id=3, eos_token_id=1))
    return tokenizer, encoder


def tiny_sana(directory: Path, seed: int = 0):
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel

    torch.manual_seed(seed)
    tokenizer, text_encoder = _gemma(directory)
    transformer = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                         num_attention_heads=2, attention_head_dim=4, num_cross_attention_heads=2,
                                         cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
                                         sample_size=8)
    vae = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                        encoder_block_types=("ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
                        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)),
                        decoder_qkv_multiscales=((), (5,)), encoder_layers_per_block=(1, 1),
                        decoder_layers_per_block=(1, 1), downsample_block_type="conv",
                        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
                        scaling_factor=0.41407)
    pipe = SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    return _save_and_reload(pipe, directory / "sana")


FAMILIES["sana"] = tiny_sana

# what the tiny pipelines need at call time: resolution binning works on the real 256-1024 px sizes only,
# and Sana's pipeline takes multiples of 32 px
CALL_KWARGS = {"pixart": {"use_resolution_binning": False}, "sana": {"use_resolution_binning": False}}
SIZE = {"sana": 32}
