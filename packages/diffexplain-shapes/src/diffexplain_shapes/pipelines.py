"""The built-in shapes pipelines: their architectures, tokenizer, and the public loader.

The weights are trained by the scripts in the repository's ``training/`` folder and shipped inside
this package under ``diffexplain_shapes/weights/<name>``; ``load`` opens them with diffexplain's
ordinary loader and never touches the network. Each folder carries ``diffexplain.json``, the
marker holding its sampler and attention defaults and its closed vocabulary, so the core library
treats it like any other local pipeline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PIPELINES = ("text2image", "instruct_pix2pix", "inpaint", "paint_by_example", "flux")
MAX_TOKENS = 32  # shapes captions have at most ~28 words, each one token
LATENT_CHANNELS = 8

def vae_config() -> dict[str, Any]:
    """A small AutoencoderKL: 64x64x3 images <-> 16x16x8 latents (factor 4).

    8 latent channels, not SD's 4, chosen on a capacity argument (a 4x4x3 patch with an object edge
    in it, in 4 numbers); not an A/B result: after 500 steps the 4-channel variant was ahead (41% vs
    30% of reconstructions passing the checker) and it was not trained further. diffusers'
    StableDiffusionInpaintPipeline only runs on 4-channel latents, so the inpaint model uses a
    4-channel VAE derived from this one (``world.train_edits.narrow_pipeline``: the top 4 principal
    directions, 98% of the latents' second moment).
    """
    return dict(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        # 4 channels a group at full size, as in SD: one channel a group erased absolute colour
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=4,
        mid_block_add_attention=False,  # flat-colour scenes need no attention; it doubled the cost
    )


def text_encoder_config(vocab_size: int) -> dict[str, Any]:
    """A small CLIP text transformer trained from scratch with the UNet."""
    return dict(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=128,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )


def unet_config() -> dict[str, Any]:
    """A UNet on 16x16x8 latents with cross-attention at every resolution (16, 8, 4 and mid)."""
    return dict(
        sample_size=16, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, layers_per_block=1,
        block_out_channels=(32, 64, 128),
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=128, attention_head_dim=4, norm_num_groups=32,
    )


def scheduler_config(prediction_type: str = "epsilon") -> dict[str, Any]:
    """DDIM over the cosine schedule.

    Epsilon models use "leading" timesteps (the first step at t = 951 for 20 steps), not "trailing":
    the cosine schedule's alpha_bar(999) is 2.4e-9, so a first step at t = 999 divides the epsilon
    error by sqrt(alpha_bar) = 4.9e-5 when predicting x0. On 32 held-out captions (checker: counts /
    shapes right): leading 13/32, 9/32 and trailing with x0 clipped to +-3 8/32, 8/32 at UNet step
    2,600; plain trailing 10/32, 7/32 at step 2,500, its images textured noise.

    v-prediction models ("v_prediction") predict x0 directly at high noise, so they start at
    t = 999 ("trailing"), from pure noise as in training (Lin et al., 2024).
    """
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    return dict(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type,
        clip_sample=False, set_alpha_to_one=False,
        timestep_spacing="leading" if prediction_type == "epsilon" else "trailing",
        steps_offset=1,  # used by "leading" only; 1 keeps diffusers' deprecation check quiet
    )


def build_tokenizer(directory: str | os.PathLike, words: list[str] | None = None):
    """Write a CLIP BPE vocabulary in which every word is one token, and load it.

    Args:
        directory: where vocab.json and merges.txt go.
        words: the vocabulary (default: the shapes world's caption words).

    Returns:
        transformers.CLIPTokenizer with ``model_max_length = MAX_TOKENS``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    from .scene import vocabulary

    words = list(words) if words is not None else vocabulary()

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=10_000, min_frequency=1, end_of_word_suffix="</w>",
        special_tokens=["<|startoftext|>", "<|endoftext|>"], show_progress=False,
    )
    bpe.train_from_iterator(words, trainer)
    bpe.model.save(str(directory))
    tokenizer = CLIPTokenizer.from_pretrained(str(directory), model_max_length=MAX_TOKENS, local_files_only=True)
    for word in words:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:  # the trainer's merges reproduce every training word; guard the invariant
            raise RuntimeError(f"word {word!r} is {len(ids)} tokens in the shapes vocabulary")
    return tokenizer


def run_tokenizer(directory: str | os.PathLike, words: list[str] | None = None):
    """A training run's tokenizer: built in ``directory`` once (``build_tokenizer``), then always
    loaded from there, so token ids never drift.

    ``local_files_only=True``: otherwise transformers records ``local_files_only: false`` in the
    config that an export saves, whenever the offline variables are unset.
    """
    from transformers import CLIPTokenizer

    if (Path(directory) / "vocab.json").exists():
        return CLIPTokenizer.from_pretrained(str(directory), model_max_length=MAX_TOKENS, local_files_only=True)
    return build_tokenizer(directory, words)


def weights_path(name: str) -> Path:
    if name not in PIPELINES:
        raise ValueError(f"name must be one of {PIPELINES}, got {name!r}")
    return WEIGHTS_DIR / name


def load(name: str = "text2image", *, dtype=None):
    """Load a built-in shapes pipeline from the weights shipped in the package.

    Args:
        name: which pipeline; one of ``PIPELINES``.
        dtype: torch dtype to load the weights in (default float32; they are stored in float16).

    Returns:
        A diffusers pipeline on the CPU (move it yourself).
    """
    from diffexplain.models.loading import load_pipeline

    path = weights_path(name)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"no trained weights for shapes pipeline {name!r} at {path}; "
                                "train them with the scripts in the repository's training/ folder")
    return load_pipeline(str(path), dtype=dtype)


def defaults(name: str = "text2image"):
    """The sampler and attention defaults the pipeline ``name`` ships (its ``diffexplain.json``)."""
    from diffexplain.models.defaults import read_defaults

    return read_defaults(weights_path(name))


def marker(name: str) -> str:
    """The text of the shipped pipeline ``name``'s ``diffexplain.json``: an export writes it next to its
    weights, so a trained candidate runs with the defaults of the model it may replace."""
    from diffexplain.models.defaults import MARKER

    return (weights_path(name) / MARKER).read_text()


def registered() -> dict[str, str]:
    """Entry point ``diffexplain.pipelines``: the names ``--model`` accepts, mapped to folders."""
    folders = {name: str(weights_path(name)) for name in PIPELINES}
    return {"shapes": folders["text2image"], **folders}


def training_record(name: str = "text2image") -> dict[str, Any]:
    """The training record (command, seed, steps, wall time, metrics) shipped next to the weights."""
    with open(weights_path(name) / "training.json") as handle:
        return json.load(handle)
