"""Train the built-in shapes Flux pipeline (``FluxPipeline``) on the shapes world (CPU, resumable).

Stages::

    python -m training.train_flux flux   --run-dir runs/flux --steps 40000 --threads 1
    python -m training.train_flux export --run-dir runs/flux --fp16 --dest /tmp/flux
    python -m training.train_flux pack   --run-dir runs/flux --dest runs/packed_flux

The architecture is Flux.1's (Black Forest Labs, 2024) at shapes scale: a ``FluxTransformer2DModel``
with double-stream (joint text / image attention) and single-stream blocks and 3-axis rotary
positions, trained from scratch with rectified flow (x_t = (1 - s) x0 + s noise, target noise - x0,
s drawn logit-normal as in SD3, Esser et al., ICML 2024), 10% empty captions so that true
classifier-free guidance is possible, and EMA weights. Its context is a small T5 encoder trained
with the transformer (a word-level, lower-casing T5 tokenizer over the shapes vocabulary); the
pooled vector comes from the shipped text2image CLIP text encoder, frozen. The VAE is the shipped
text2image VAE (64x64x3 <-> 16x16x8; Flux packs 2x2 latent patches, so 64 image tokens of 32
channels), saved with ``shift_factor=0`` as FluxPipeline requires.

Data come from ``numpy.random.default_rng([seed, step])`` (scenes rendered on the fly into a pool of
encoded latents refreshed a few a step, as in ``training.train``), so a resumed run sees exactly the
batches an uninterrupted one would. Checkpoints go to ``--run-dir`` every ``--save-every`` steps,
written atomically; ``log.jsonl`` and ``commands.txt`` record the run.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffexplain.models.defaults import MARKER
from diffexplain_shapes import pipelines as shapes_models
from diffexplain_shapes.scene import vocabulary

from .train import (
    ScenePool,
    _atomic_save,
    _load_packed,
    _log,
    _read_log,
    drop_words,
    filler_keep,
    log_window,
    resume_models,
)

T5_MAX_TOKENS = 32  # the shapes captions' longest is ~28 words, one token each, plus </s>


def t5_config(vocab_size: int) -> dict:
    """A small T5 encoder trained with the transformer: 128 wide, 2 layers."""
    return dict(vocab_size=vocab_size, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4,
                relative_attention_num_buckets=16, relative_attention_max_distance=32, pad_token_id=0,
                eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="gated-gelu", dropout_rate=0.0)


def transformer_config(width: int = 192, double: int = 3, single: int = 3) -> dict:
    """Flux's transformer on 8x8 packed tokens of 32 channels; heads of 32, rotary axes (8, 12, 12)."""
    return dict(patch_size=1, in_channels=4 * shapes_models.LATENT_CHANNELS, num_layers=double,
                num_single_layers=single, attention_head_dim=32, num_attention_heads=width // 32,
                joint_attention_dim=128, pooled_projection_dim=128, guidance_embeds=False,
                axes_dims_rope=(8, 12, 12))


def scheduler_config() -> dict:
    """Flow-matching Euler without resolution-dependent shifting (every image is 64 tokens)."""
    return dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)


def build_t5_tokenizer(directory: Path):
    """A T5-convention fast tokenizer (``</s>`` appended, ``<pad>`` = 0) with one token per shapes
    word; text is lower-cased and split on whitespace and punctuation before lookup."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if (directory / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   model_max_length=T5_MAX_TOKENS, padding_side="right")
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(n, C, 16, 16) latents -> (n, 64, 4C) tokens, as ``FluxPipeline._pack_latents``."""
    n, c, h, w = latents.shape
    x = latents.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // 2) * (w // 2), c * 4)


def image_ids(h: int = 8, w: int = 8) -> torch.Tensor:
    """Rotary ids (h*w, 3) of the packed image tokens: (0, row, column), as FluxPipeline's."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


class _Pool(ScenePool):
    """``ScenePool`` with latents scaled as FluxPipeline reads them; batches are captions."""

    def __init__(self, vae, size: int, seed: int):
        super().__init__(vae, size, seed, vae.config.scaling_factor)

    def batch(self, step: int, size: int, p_uncond: float, p_word_drop: float, p_filler_drop: float):
        rng = np.random.default_rng([self.seed, 5, step])
        idx = rng.choice(len(self.captions), size=size, replace=False)
        captions = ["" if rng.random() < p_uncond else self.captions[i] for i in idx]
        drop_rng = np.random.default_rng([self.seed, 6, step])
        for j, caption in enumerate(captions):
            if not caption:
                continue
            u = drop_rng.random()
            if u < p_word_drop:
                captions[j] = drop_words(caption, drop_rng)
            elif u < p_word_drop + p_filler_drop:
                keep = filler_keep(self.fillers[idx[j]], drop_rng)
                captions[j] = " ".join(w for w, k in zip(caption.split(), keep) if k)
        return self.latents[idx], captions


class Models(torch.nn.Module):
    """What training updates: the transformer and the T5 encoder."""

    def __init__(self, t5_vocab: int, width: int, double: int, single: int):
        super().__init__()
        from diffusers import FluxTransformer2DModel
        from transformers import T5Config, T5EncoderModel

        self.transformer = FluxTransformer2DModel(**transformer_config(width, double, single))
        self.t5 = T5EncoderModel(T5Config(**t5_config(t5_vocab)))


def _frozen_clip(run_dir: Path):
    from transformers import CLIPTextModel

    clip = CLIPTextModel.from_pretrained(run_dir / "text_encoder", torch_dtype=torch.float32).eval()
    return clip.requires_grad_(False), shapes_models.run_tokenizer(run_dir / "tokenizer")


def _prepare(run_dir: Path) -> None:
    """Copy the shipped text2image VAE, CLIP text encoder and tokenizer into the run (once), so the
    run never depends on the package's files changing under it."""
    source = shapes_models.weights_path("text2image")
    for part in ("vae", "text_encoder", "tokenizer"):
        if not (run_dir / part).exists():
            shutil.copytree(source / part, run_dir / part)
    config = json.loads((run_dir / "vae" / "config.json").read_text())
    if config.get("shift_factor") is None:  # FluxPipeline adds vae.config.shift_factor when decoding
        config["shift_factor"] = 0.0
        (run_dir / "vae" / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    anneal_start = args.steps - args.anneal
    if step < anneal_start:
        return args.lr
    return args.lr * 0.5 * (1 + math.cos(math.pi * (step - anneal_start) / max(1, args.anneal)))


def encode_text(models: Models, clip, clip_tokenizer, t5_tokenizer, captions: list[str]):
    """(pooled (n, 128), T5 context (n, 32, 128)) exactly as FluxPipeline.encode_prompt computes them
    with ``max_sequence_length=32``: both tokenizers pad to their maximum, no attention mask."""
    clip_ids = clip_tokenizer(captions, padding="max_length", max_length=clip_tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        pooled = clip(clip_ids, output_hidden_states=False).pooler_output
    t5_ids = t5_tokenizer(captions, padding="max_length", max_length=T5_MAX_TOKENS, truncation=True,
                          return_tensors="pt").input_ids
    return pooled, models.t5(t5_ids, output_hidden_states=False)[0]


def train_flux(args) -> None:
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    _prepare(run_dir)
    vae = AutoencoderKL.from_pretrained(run_dir / "vae", torch_dtype=torch.float32).eval().requires_grad_(False)
    clip, clip_tokenizer = _frozen_clip(run_dir)
    t5_tokenizer = build_t5_tokenizer(run_dir / "tokenizer_2")
    torch.manual_seed(args.seed)
    models = Models(len(t5_tokenizer), args.width, args.double, args.single)
    ema = copy.deepcopy(models).requires_grad_(False)
    optimizer = torch.optim.AdamW(models.parameters(), lr=args.lr, weight_decay=0.01)
    ckpt_path = run_dir / "flux.ckpt"
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        step, elapsed, _ = resume_models(ckpt_path, models, ema, optimizer)
        print(f"resumed at step {step}", flush=True)
    elif args.init_from:
        step, elapsed = _load_packed(Path(args.init_from), models, ema)
        print(f"initialised from {args.init_from} at step {step}", flush=True)
    (run_dir / "architecture.json").write_text(json.dumps(
        dict(width=args.width, double=args.double, single=args.single), indent=2) + "\n")
    pool = _Pool(vae, args.pool, args.seed)
    for past in range(max(0, step - args.pool // args.refresh), step):  # replay recent refreshes
        pool.refresh(past, args.refresh)
    img_ids, txt_ids = image_ids(), torch.zeros(T5_MAX_TOKENS, 3)
    models.train()
    start = time.time() - elapsed
    window: list[float] = []
    while step < args.steps:
        latents, captions = pool.batch(step, args.batch, args.p_uncond, args.word_drop, args.filler_drop)
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        x0 = pack_latents(latents)
        noise = torch.randn(x0.shape, generator=gen)
        sigma = torch.sigmoid(torch.randn(x0.shape[0], generator=gen))  # logit-normal(0, 1)
        noisy = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        lr = _lr_at(step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pooled, context = encode_text(models, clip, clip_tokenizer, t5_tokenizer, captions)
        pred = models.transformer(hidden_states=noisy, timestep=sigma, pooled_projections=pooled,
                                  encoder_hidden_states=context, txt_ids=txt_ids, img_ids=img_ids,
                                  return_dict=False)[0]
        loss = (pred - (noise - x0)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), models.parameters()):
                p_ema.lerp_(p, 1 - decay)
        pool.refresh(step, args.refresh)
        step += 1
        window = log_window(run_dir, "flux", step, args.steps, window + [loss.item()], lr, start)
        if step % args.save_every == 0 or step == args.steps:
            _atomic_save(dict(models=models.state_dict(), ema=ema.state_dict(), optimizer=optimizer.state_dict(),
                              step=step, elapsed=time.time() - start), ckpt_path)
    _log(run_dir, dict(stage="flux_done", step=step, wall_s=round(time.time() - start, 1)))


def pack(args) -> None:
    """A pickle-free resume state (weights + EMA as safetensors, the run's copied components, log,
    commands) in --dest; ``flux --init-from DEST`` continues from it with a fresh optimizer."""
    from safetensors.torch import save_file

    run_dir, dest = Path(args.run_dir), Path(args.dest or "runs/packed_flux")
    dest.mkdir(parents=True, exist_ok=True)
    state = torch.load(run_dir / "flux.ckpt", weights_only=True)
    # clones: T5 ties its input embedding to ``shared``, and safetensors refuses shared storage
    tensors = {f"models.{k}": v.clone().contiguous() for k, v in state["models"].items()}
    tensors.update({f"ema.{k}": v.clone().contiguous() for k, v in state["ema"].items()})
    save_file(tensors, dest / "resume.safetensors",
              metadata=dict(step=str(state["step"]), elapsed=str(state["elapsed"])))
    for part in ("vae", "text_encoder", "tokenizer", "tokenizer_2"):
        if (dest / part).exists():
            shutil.rmtree(dest / part)
        shutil.copytree(run_dir / part, dest / part)
    for name in ("log.jsonl", "commands.txt", "architecture.json"):
        shutil.copy(run_dir / name, dest / name)
    print(f"packed step {state['step']} into {dest}", flush=True)


def build_pipeline(run_dir: Path, use_ema: bool = True):
    """Assemble the FluxPipeline of a run directory's checkpoint; returns (pipe, step, elapsed s)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline

    arch = json.loads((run_dir / "architecture.json").read_text())
    clip, clip_tokenizer = _frozen_clip(run_dir)
    t5_tokenizer = build_t5_tokenizer(run_dir / "tokenizer_2")
    models = Models(len(t5_tokenizer), arch["width"], arch["double"], arch["single"])
    state = torch.load(run_dir / "flux.ckpt", weights_only=True)
    models.load_state_dict(state["ema" if use_ema else "models"])
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**scheduler_config()),
                        vae=AutoencoderKL.from_pretrained(run_dir / "vae", torch_dtype=torch.float32).eval(),
                        text_encoder=clip, tokenizer=clip_tokenizer, text_encoder_2=models.t5.eval(),
                        tokenizer_2=t5_tokenizer, transformer=models.transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe, state["step"], state["elapsed"]


MARKER_TEXT = dict(name="shapes/flux", sampler=dict(num_inference_steps=20, guidance_scale=1.0, height=64, width=64),
                   # true classifier-free guidance against the empty prompt (trained with 10% empty captions):
                   # on 64 held-out captions at step 5,500, all attributes right 11% -> 25% at scale 2
                   pipeline_args=dict(max_sequence_length=T5_MAX_TOKENS, true_cfg_scale=2.0, negative_prompt=""),
                   attention=dict(min_grid=1, tau=0.4),
                   vocabulary=vocabulary())


def export(args) -> None:
    run_dir = Path(args.run_dir)
    dest = Path(args.dest or "runs/flux_export")
    pipe, step, elapsed = build_pipeline(run_dir)
    if args.fp16:
        pipe.to(torch.float16)
    pipe.save_pretrained(dest, safe_serialization=True)
    (dest / MARKER).write_text(json.dumps(MARKER_TEXT, indent=1) + "\n")
    log = [r for r in _read_log(run_dir) if r.get("stage") == "flux"]
    commands = (run_dir / "commands.txt").read_text().splitlines()
    record = dict(pipeline="flux", commands=commands, seed=args.seed, steps=step, wall_s=round(elapsed, 1),
                  architecture=json.loads((run_dir / "architecture.json").read_text()),
                  final_loss=log[-1]["loss"] if log else None,
                  loss_curve=[dict(step=r["step"], loss=round(r["loss"], 5)) for r in log[::20]],
                  weights_dtype="float16" if args.fp16 else "float32", torch=torch.__version__)
    (dest / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"exported step {step} to {dest}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train_flux", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["flux", "export", "pack"])
    parser.add_argument("--run-dir", default="runs/flux")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--anneal", type=int, default=4000, help="cosine LR decay over the last N steps")
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--p-uncond", type=float, default=0.1)
    parser.add_argument("--word-drop", type=float, default=0.15)
    parser.add_argument("--filler-drop", type=float, default=0.25)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--double", type=int, default=3)
    parser.add_argument("--single", type=int, default=3)
    parser.add_argument("--pool", type=int, default=16384)
    parser.add_argument("--refresh", type=int, default=8)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init-from", default=None, help="a packed directory to continue from")
    parser.add_argument("--dest", default=None)
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    for name in ("p_uncond", "word_drop", "filler_drop"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    if args.width % 32:
        parser.error(f"--width must be a multiple of 32 (heads of 32), got {args.width}")
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "commands.txt", "a") as handle:
        handle.write(shlex.join(["python", "-m", "training.train_flux", *(argv or sys.argv[1:])]) + "\n")
    {"flux": train_flux, "export": export, "pack": pack}[args.stage](args)


if __name__ == "__main__":
    main()
