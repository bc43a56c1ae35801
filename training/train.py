"""Train the built-in shapes text-to-image pipeline on the shapes world (CPU friendly, resumable).

Stages, each resumable from its checkpoint in ``--run-dir``::

    python -m training.train vae    --run-dir runs/text2image --steps 2000
    python -m training.train vae-decoder --run-dir runs/text2image --steps 3000
    python -m training.train vae-colour --run-dir runs/t2i_colour --init-vae runs/text2image/vae
    python -m training.train unet   --run-dir runs/text2image --steps 40000
    python -m training.train export --run-dir runs/text2image
    python -m training.train pack   --run-dir runs/text2image --dest training/text2image

``pack`` writes a committed, pickle-free resume state (VAE and tokenizer folders, UNet +
text-encoder weights and their EMA in safetensors, the log and the commands); a later machine continues with
``unet --init-from training/text2image`` (the optimizer restarts with a fresh LR warm-up).

``vae`` trains the AutoencoderKL on rendered training scenes; ``vae-colour`` fine-tunes one so that
three latent channels carry 4x4-pooled RGB (the palette's distances survive in the latent);
``vae-decoder`` fine-tunes its decoder alone (latents unchanged, so it may run alongside ``unet``;
``--p-background`` over-samples black and gray scenes); ``install-vae`` copies such a VAE into
exported pipelines after checking that their encoders are identical;
``unet`` trains the CLIP text encoder and the UNet jointly (``--prediction epsilon`` with min-SNR-5
weighting, or ``v_prediction`` with the x0 weight floored at 1; cosine schedule, 10% empty captions
for classifier-free guidance, EMA weights, LR warm-up then cosine annealing over the last ``--anneal``
steps); ``export`` writes the EMA pipeline with ``save_pretrained`` into the package. Every stage
appends JSON lines to ``log.jsonl`` and the exact commands to ``commands.txt`` in the run directory.
Data come from ``numpy.random.default_rng([seed, step])``, so a resumed run sees exactly the batches
an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diffexplain.models.defaults import MARKER
from diffexplain_shapes import pipelines as shapes_models
from diffexplain_shapes.scene import sample_scene

from .grounding import AttentionTaps, token_objects


def _log(run_dir: Path, record: dict) -> None:
    with open(run_dir / "log.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _read_log(run_dir: Path) -> list[dict]:
    """Every record ``_log`` appended to the run's ``log.jsonl``, in order."""
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _report_and_save(run_dir: Path, ckpt_path: Path, args, step: int, start: float, record: dict, state: dict) -> None:
    """Log every 50 steps and checkpoint every ``--save-every`` steps (and at the last step)."""
    if step % 50 == 0 or step == args.steps:
        record = dict(record, step=step, wall_s=round(time.time() - start, 1))
        print(json.dumps(record), flush=True)
        _log(run_dir, record)
    if step % args.save_every == 0 or step == args.steps:
        _atomic_save(dict(state, step=step, elapsed=time.time() - start), ckpt_path)


def min_snr_loss(pred: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, gamma: float) -> torch.Tensor:
    """Epsilon-prediction MSE weighted by min(SNR, gamma) / SNR per sample (min-SNR-gamma)."""
    snr = (alpha_bar / (1 - alpha_bar)).view(-1)
    return (torch.clamp(snr, max=gamma) / snr * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()


def v_loss(pred: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor,
           gamma: float) -> torch.Tensor:
    """v-prediction MSE weighted by min(SNR + 1, gamma) / (SNR + 1) per sample.

    In x0 terms the weight is min(SNR + 1, gamma): at least 1 at high noise, where min-SNR-gamma's
    weight (SNR, 0.006 at t = 951) gives the text almost no say over the image's colours.
    """
    target = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents
    snr1 = (alpha_bar / (1 - alpha_bar)).view(-1) + 1
    return (torch.clamp(snr1, max=gamma) / snr1 * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()


def denoising_loss(pred: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor,
                   gamma: float, prediction: str) -> torch.Tensor:
    """The training loss for a UNet that predicts ``prediction`` ("epsilon": min_snr_loss,
    "v_prediction": v_loss); ``latents`` are the clean x0 of shape (n, C, h, w)."""
    if prediction == "v_prediction":
        return v_loss(pred, latents, noise, alpha_bar, gamma)
    return min_snr_loss(pred, noise, alpha_bar, gamma)


def _prediction(state: dict) -> str:
    """A checkpoint's prediction type; checkpoints from before v-prediction are epsilon."""
    return state.get("prediction", "epsilon")


def optimise(loss: torch.Tensor, optimizer, parameters=None, ema=None, models=None, ema_decay: float = 0.0,
             step: int = 0) -> None:
    """One optimizer step; clips gradients of ``parameters`` to norm 1 when given, then updates the
    EMA copy ``ema`` of ``models`` with a warm-started decay."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if parameters is not None:
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()
    if ema is not None:
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), models.parameters()):
                p_ema.lerp_(p, 1 - decay)


def log_window(run_dir: Path, stage: str, step: int, total: int, window: list, lr: float, start: float) -> list:
    """Every 50 steps (and at the last), log the mean loss of the window; returns the window to keep."""
    if step % 50 and step != total:
        return window
    record = dict(stage=stage, step=step, loss=float(np.mean(window)), lr=lr, wall_s=round(time.time() - start, 1))
    print(json.dumps(record), flush=True)
    _log(run_dir, record)
    return []


def _resume(ckpt_path: Path, model, optimizer) -> tuple[int, float]:
    """Load a single-model checkpoint if there is one; returns (step, elapsed seconds)."""
    if not ckpt_path.exists():
        return 0, 0.0
    state = torch.load(ckpt_path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resumed {ckpt_path.name} at step {state['step']}", flush=True)
    return state["step"], state["elapsed"]


def resume_models(ckpt_path: Path, models, ema, optimizer) -> tuple[int, float, dict]:
    """Load a models + EMA + optimizer checkpoint; returns (step, elapsed seconds, the whole state)."""
    state = torch.load(ckpt_path, weights_only=True)
    models.load_state_dict(state["models"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], state["elapsed"], state


def _cosine_lr(optimizer, base: float, step: int, total: int) -> float:
    """Set and return the cosine-decayed learning rate of ``step`` out of ``total``."""
    lr = base * 0.5 * (1 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _images(scenes) -> torch.Tensor:
    """Render scenes into a float tensor in [-1, 1], shape (n, 3, 64, 64)."""
    array = np.stack([s.render() for s in scenes]).astype(np.float32)
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def _vae_losses(vae, x: torch.Tensor, kl_weight: float):
    """VAE training loss on images ``x`` (n, 3, 64, 64): L1 + MSE reconstruction + weighted KL.

    Returns (loss, l1, kl, posterior)."""
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.sample()).sample
    l1 = (recon - x).abs().mean()
    kl = posterior.kl().mean() / x[0].numel()
    return l1 + (recon - x).pow(2).mean() + kl_weight * kl, l1, kl, posterior


def _fit_vae(vae, args, ckpt_path: Path, stage: str, tag: int, colour_tie: bool) -> tuple[int, float]:
    """Train ``vae`` to ``args.steps`` (resuming from ``ckpt_path``) on batches drawn with rng ``[seed,
    tag, step]`` (posterior noise seeded per step too); with ``colour_tie``, add the colour-
    channel tie of ``vae-colour``.

    Returns (final step, start time for wall-clock records)."""
    run_dir = Path(args.run_dir)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    step, elapsed = _resume(ckpt_path, vae, optimizer)
    vae.train()
    start = time.time() - elapsed
    while step < args.steps:
        rng = np.random.default_rng([args.seed, tag, step])
        x = _images([sample_scene(rng) for _ in range(args.batch)])
        torch.manual_seed(args.seed * 1_000_003 + step)  # the posterior sample: resumes replay it exactly
        lr = _cosine_lr(optimizer, args.lr, step, args.steps)
        loss, l1, kl, posterior = _vae_losses(vae, x, args.kl_weight)
        record = dict(stage=stage, l1=l1.item(), kl=kl.item(), lr=lr)
        if colour_tie:
            tie = (posterior.mean[:, :3] - args.colour_gain * F.avg_pool2d(x, 4)).pow(2).mean()
            loss = loss + args.colour_weight * tie
            record["tie"] = tie.item()
        optimise(loss, optimizer)
        step += 1
        _report_and_save(run_dir, ckpt_path, args, step, start, dict(record, loss=loss.item()),
                         dict(model=vae.state_dict(), optimizer=optimizer.state_dict()))
    return step, start


@torch.no_grad()
def _reconstruction_stats(vae, args) -> tuple[float, float]:
    """Latent std (raw units) and reconstruction PSNR (dB) over ``args.calib`` distinct training
    scenes drawn from one rng ``[seed, 2]``, encoded in chunks of 128. Returns (std, psnr)."""
    vae.eval()
    rng = np.random.default_rng([args.seed, 2])
    x = _images([sample_scene(rng) for _ in range(args.calib)])
    latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in x.split(128)])
    recon = torch.cat([vae.decode(chunk).sample for chunk in latents.split(128)]).clamp(-1, 1)
    return latents.std().item(), (10 * torch.log10(4.0 / (recon - x).pow(2).mean())).item()


# ---------------------------------------------------------------- VAE
def train_vae(args) -> None:
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    ckpt_path = run_dir / "vae.ckpt"
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(**shapes_models.vae_config())
    step, start = _fit_vae(vae, args, ckpt_path, "vae", tag=1, colour_tie=False)
    # Scale latents to unit variance, as Stable Diffusion's scaling_factor does.
    std, psnr = _reconstruction_stats(vae, args)
    vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(run_dir / "vae")
    rec = dict(stage="vae_done", step=step, latent_std=std, scaling_factor=1.0 / std, psnr_db=psnr,
               wall_s=round(time.time() - start, 1))
    print(json.dumps(rec), flush=True)
    _log(run_dir, rec)


def finetune_decoder(args) -> None:
    """Fine-tune only the VAE decoder (as SD's ft-MSE decoder): the encoder, hence every latent
    the UNet is trained on, stays unchanged, so this can run after (or during) UNet training."""
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    ckpt_path = run_dir / "decoder.ckpt"
    vae = AutoencoderKL.from_pretrained(run_dir / "vae")
    vae.requires_grad_(False)
    trainable = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for parameter in trainable:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    step, elapsed = _resume(ckpt_path, vae, optimizer)
    start = time.time() - elapsed
    scene_kwargs = {} if args.p_background is None else {"p_background": args.p_background}
    while step < args.steps:
        rng = np.random.default_rng([args.seed, 6, step])
        x = _images([sample_scene(rng, **scene_kwargs) for _ in range(args.batch)])
        lr = _cosine_lr(optimizer, args.lr, step, args.steps)
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.mean
        recon = vae.decode(latents).sample
        l1 = (recon - x).abs().mean()
        loss = l1 + (recon - x).pow(2).mean()
        optimise(loss, optimizer)
        step += 1
        _report_and_save(run_dir, ckpt_path, args, step, start,
                         dict(stage="decoder", loss=loss.item(), l1=l1.item(), lr=lr),
                         dict(model=vae.state_dict(), optimizer=optimizer.state_dict()))
    _, psnr = _reconstruction_stats(vae, args)
    tmp = run_dir / "vae.tmp"
    vae.save_pretrained(tmp)
    shutil.rmtree(run_dir / "vae")
    os.replace(tmp, run_dir / "vae")
    rec = dict(stage="decoder_done", step=step, psnr_db=psnr, wall_s=round(time.time() - start, 1))
    print(json.dumps(rec), flush=True)
    _log(run_dir, rec)


def colour_pairs_report(vae, pairs=(("blue", "purple"), ("green", "blue"), ("yellow", "orange"),
                                      ("red", "orange"))) -> dict:
    """Latent vs pixel distances between big centred circles of confusable colours, each as a
    fraction of the mean distance from those circles to the plain white image (the squeeze that
    made colour the shapes model's weak attribute: 0.1-0.3 in the first VAE's latent, 0.4-0.7 in pixels)."""
    from diffexplain_shapes.scene import Scene, ShapeObject

    names = sorted({c for pair in pairs for c in pair})
    scenes = [Scene(objects=(ShapeObject(c, "circle", "big", "centre", 32.0, 32.0),)) for c in names]
    x = torch.cat([_images(scenes), torch.ones(1, 3, 64, 64)])  # the last row: plain white
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    report = {}
    for space, v in (("latent", z), ("pixel", x)):
        flat = v.flatten(1)
        white = flat[-1]
        to_white = torch.stack([(flat[i] - white).norm() for i in range(len(names))]).mean()
        report[space] = {f"{a}/{b}": round(((flat[names.index(a)] - flat[names.index(b)]).norm() / to_white).item(), 3)
                         for a, b in pairs}
    return report


def train_vae_colour(args) -> None:
    """Fine-tune the run's VAE so that latent channels 0-2 carry the image's 4x4-pooled RGB.

    Loss: L1 + MSE reconstruction + KL (as ``vae``) + ``--colour-weight`` * MSE between the
    posterior mean's first three channels and ``--colour-gain`` * avg_pool4(image). The tie keeps
    the palette's distances in the latent (the first VAE squeezed confusable colours to 0.1-0.3 of
    their distance to white, against 0.4-0.7 in pixels; README "Why colour is weak"). Starts from
    ``--init-vae``; ends by re-estimating the scaling factor and logging the colour-pair distances.
    """
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    ckpt_path = run_dir / "vae_colour.ckpt"
    vae = AutoencoderKL.from_pretrained(args.init_vae)
    step, start = _fit_vae(vae, args, ckpt_path, "vae_colour", tag=10, colour_tie=True)
    std, psnr = _reconstruction_stats(vae, args)
    vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(run_dir / "vae")
    rec = dict(stage="vae_colour_done", step=step, latent_std=std, scaling_factor=1.0 / std, psnr_db=psnr,
               colour_pairs=colour_pairs_report(vae), wall_s=round(time.time() - start, 1))
    print(json.dumps(rec), flush=True)
    _log(run_dir, rec)


# ---------------------------------------------------------------- latent centring
@torch.no_grad()
def center_vae(args) -> None:
    """Re-parameterise the run's VAE so its latents have zero mean per channel (in place).

    The shapes latents had per-channel means of up to 1.3 in scaled units (2.65 raw, over 2,048
    scenes; white backgrounds). At the first sampling step (t = 951, sqrt(alpha_bar) = 0.076) the noisy training
    latents carry 0.076 * mean, and pure N(0, I) starting noise does not: sampled from pure noise, the
    step-7,400 UNet drew textured noise on training captions too, while the same DDIM loop started
    from noise + 0.076 * mean drew clean scenes. Centring removes the mismatch for every sampler and
    for a plain ``pipe(prompt)``. The change is exact: the encoder's ``quant_conv`` bias loses the
    mean and the decoder's ``post_quant_conv`` bias gains ``W @ mean``, so decode(encode(x)) is
    unchanged; the scaling factor is kept so the UNet's input scale stays what it learned.
    """
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    vae = AutoencoderKL.from_pretrained(run_dir / "vae").eval()
    channels = vae.config.latent_channels
    x = _images([sample_scene(np.random.default_rng([args.seed, 6, i])) for i in range(args.calib)])
    before = vae.decode(vae.encode(x[:64]).latent_dist.mean).sample
    mean = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in x.split(128)]).mean(dim=(0, 2, 3))
    vae.quant_conv.bias[:channels] -= mean
    weight = vae.post_quant_conv.weight[:, :, 0, 0]  # (C_out, C_in)
    vae.post_quant_conv.bias += weight @ mean
    after = vae.decode(vae.encode(x[:64]).latent_dist.mean).sample
    drift = (after - before).abs().max().item()
    if drift > 1e-3:
        raise RuntimeError(f"centring changed the reconstruction by {drift}")
    residual = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in x[:512].split(128)]).mean(dim=(0, 2, 3))
    tmp = run_dir / "vae.tmp"
    vae.save_pretrained(tmp)
    shutil.rmtree(run_dir / "vae")
    os.replace(tmp, run_dir / "vae")
    rec = dict(stage="vae_center", removed_mean=[round(v, 4) for v in mean.tolist()],
               residual_mean=[round(v, 4) for v in residual.tolist()], reconstruction_drift=drift)
    print(json.dumps(rec), flush=True)
    _log(run_dir, rec)


# ---------------------------------------------------------------- UNet + text encoder
class ScenePool:
    """A pool of encoded training scenes (latents, captions, which words are fillers), refreshed a few
    scenes per step, so the denoiser sees new scenes all the time without paying for a full VAE
    encode of every batch. Scenes come from ``default_rng([seed, 3, start])`` when the pool fills and
    ``default_rng([seed, 4, step])`` at each refresh, so a resumed run sees the same pool."""

    def __init__(self, vae, size: int, seed: int, scaling: float):
        self.vae, self.seed, self.scaling = vae, seed, scaling
        self.latents = torch.empty(size, shapes_models.LATENT_CHANNELS, 16, 16)
        self.captions: list[str] = [""] * size
        self.fillers: list[list[bool]] = [[] for _ in range(size)]  # per caption word, for --filler-drop
        for start in range(0, size, 256):
            self._fill(range(start, min(size, start + 256)), np.random.default_rng([seed, 3, start]))

    @torch.no_grad()
    def _fill(self, indices, rng) -> None:
        indices = list(indices)
        scenes = [sample_scene(rng) for _ in indices]
        self.latents[indices] = self.vae.encode(_images(scenes)).latent_dist.mean * self.scaling
        for i, scene in zip(indices, scenes):
            self.captions[i] = scene.caption
            self.fillers[i] = (scene.relevance == 0).tolist()  # the words the ground truth calls irrelevant
            self._describe(i, scene)

    def _describe(self, index: int, scene) -> None:
        """Keep what a subclass needs of ``scene`` at ``index`` besides latents and caption."""

    def refresh(self, step: int, count: int) -> None:
        rng = np.random.default_rng([self.seed, 4, step])
        self._fill(rng.choice(len(self.captions), size=count, replace=False), rng)


class _LatentPool(ScenePool):
    """``ScenePool`` with what the grounding loss needs: each scene's visible object masks at latent
    resolution and the object each caption token names."""

    def __init__(self, vae, tokenizer, size: int, seed: int, scaling: float):
        self.tokenizer = tokenizer
        self.masks = torch.zeros(size, 3, 16, 16, dtype=torch.float16)
        self.token_object = torch.full((size, tokenizer.model_max_length), -1, dtype=torch.int8)
        super().__init__(vae, size, seed, scaling)

    def _describe(self, index: int, scene) -> None:
        masks = torch.from_numpy(scene.masks()).float()[:, None]
        self.masks[index] = 0
        self.masks[index, :len(scene.objects)] = F.avg_pool2d(masks, 4)[:, 0].half()
        self.token_object[index] = torch.from_numpy(token_objects(scene, self.tokenizer, self.token_object.shape[1]))

    def batch(self, step: int, size: int, p_uncond: float, p_word_drop: float = 0.0, p_filler_drop: float = 0.0):
        rng = np.random.default_rng([self.seed, 5, step])
        idx = rng.choice(len(self.captions), size=size, replace=False)
        captions = ["" if rng.random() < p_uncond else self.captions[i] for i in idx]
        ungrounded = [c == "" for c in captions]
        token_object = self.token_object[idx].long()
        if p_filler_drop > 0:  # its own stream as well
            filler_rng = np.random.default_rng([self.seed, 7, step])
            for j, caption in enumerate(captions):
                if caption and filler_rng.random() < p_filler_drop:
                    words, fillers = caption.split(), self.fillers[idx[j]]
                    keep = filler_keep(fillers, filler_rng)
                    captions[j] = " ".join(w for w, k in zip(words, keep) if k)
                    # one token per word in the shapes vocabulary, so the grounding targets move with the words
                    kept = 1 + torch.from_numpy(np.flatnonzero(keep))
                    row = torch.full_like(token_object[j], -1)
                    row[1:1 + len(kept)] = token_object[j, kept]
                    token_object[j] = row
        if p_word_drop > 0:  # a separate stream, so runs without word dropout draw the same batches
            drop_rng = np.random.default_rng([self.seed, 6, step])
            for j, caption in enumerate(captions):
                if caption and drop_rng.random() < p_word_drop:
                    captions[j] = drop_words(caption, drop_rng)
                    ungrounded[j] = True  # token positions moved; the grounding targets no longer apply
        ids = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        token_object[torch.tensor(ungrounded)] = -1
        return self.latents[idx], ids, self.masks[idx].float(), token_object


def drop_words(caption: str, rng: np.random.Generator) -> str:
    """The caption with a random subset of its words removed, as a prompt explainer's coalition.

    The share of words kept is drawn uniformly from [0, 1) and each word is kept independently
    with that probability, so every coalition size is seen about equally often (exact Shapley
    weights coalition sizes equally). Word order is kept; the result may be empty.
    """
    words = caption.split()
    keep = rng.random(len(words)) < rng.random()
    return " ".join(w for w, k in zip(words, keep) if k)


def check_shares(parser: argparse.ArgumentParser, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Exit through ``parser.error`` naming the flag when any of ``args``' ``names`` is outside [0, 1]."""
    for name in names:
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")


def drop_fillers(words: list[str], fillers: list[bool], rng: np.random.Generator) -> str:
    """The text with a random subset of its filler words removed; every content word stays, in order.

    As ``drop_words`` but over the fillers only: the share of fillers kept is uniform on [0, 1)
    and each is kept independently with it. Trains terse phrasings ("red circle blue", "a red
    circle the centre") to mean what the full text means, which is what the word ground truth
    (fillers are irrelevant) assumes of the model.
    """
    return " ".join(w for w, k in zip(words, filler_keep(fillers, rng)) if k)


def filler_keep(fillers: list[bool], rng: np.random.Generator) -> np.ndarray:
    """Which words ``drop_fillers`` keeps: (n_words,) bool, True for every content word."""
    keep_share = rng.random()
    return ~np.asarray(fillers, dtype=bool) | (rng.random(len(fillers)) < keep_share)


def _lr_at(step: int, args, warm_start: int = 0) -> float:
    if step - warm_start < args.warmup:
        return args.lr * (step - warm_start + 1) / args.warmup
    anneal_start = args.steps - args.anneal
    if step < anneal_start:
        return args.lr
    frac = (step - anneal_start) / max(1, args.anneal)
    return args.lr * 0.5 * (1 + math.cos(math.pi * frac))


def train_unet(args) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    run_dir = Path(args.run_dir)
    ckpt_path = run_dir / "unet.ckpt"
    if args.init_from:  # the packed run's VAE and tokenizer, so token ids and latents match
        for part in ("vae", "tokenizer"):
            if not (run_dir / part).exists():
                shutil.copytree(Path(args.init_from) / part, run_dir / part)
    tokenizer = shapes_models.run_tokenizer(run_dir / "tokenizer")
    vae = AutoencoderKL.from_pretrained(run_dir / "vae").eval()
    torch.manual_seed(args.seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**shapes_models.text_encoder_config(len(tokenizer))))
    unet = UNet2DConditionModel(**shapes_models.unet_config())
    models = torch.nn.ModuleDict(dict(unet=unet, text_encoder=text_encoder))
    ema = copy.deepcopy(models).requires_grad_(False)
    optimizer = torch.optim.AdamW(models.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = DDIMScheduler(**shapes_models.scheduler_config(args.prediction))
    alphas_cumprod = scheduler.alphas_cumprod.float()
    step, elapsed, warm_start = 0, 0.0, 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True)
        if _prediction(state) != args.prediction:
            raise ValueError(f"--prediction {args.prediction} does not match the checkpoint's "
                             f"{_prediction(state)!r} in {ckpt_path}")
        models.load_state_dict(state["models"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, warm_start = state["step"], state["elapsed"], state.get("warm_start", 0)
        print(f"resumed UNet at step {step}", flush=True)
    elif args.init_from:
        step, elapsed = _load_packed(Path(args.init_from), models, ema)
        warm_start = step  # fresh optimizer moments: warm the learning rate up again
        _inherit_history(Path(args.init_from), run_dir)
        print(f"initialised UNet from {args.init_from} at step {step}", flush=True)
    pool = _LatentPool(vae, tokenizer, args.pool, args.seed, vae.config.scaling_factor)
    for past in range(max(0, step - args.pool // args.refresh), step):  # replay recent refreshes
        pool.refresh(past, args.refresh)
    models.train()
    start = time.time() - elapsed
    window: list[float] = []
    ground_window: list[float] = []
    taps = AttentionTaps(unet) if args.ground > 0 else contextlib.nullcontext()
    while step < args.steps:
        latents, ids, masks, token_object = pool.batch(step, args.batch, args.p_uncond, args.word_drop,
                                                       args.filler_drop)
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen)
        abar = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * latents + (1 - abar).sqrt() * noise
        lr = _lr_at(step, args, warm_start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        hidden = text_encoder(ids).last_hidden_state
        with taps:
            loss = denoising_loss(unet(noisy, t, hidden).sample, latents, noise, abar, args.min_snr,
                                  args.prediction)
        ground = taps.loss(masks, token_object) if args.ground > 0 else loss.new_zeros(())
        optimise(loss + args.ground * ground, optimizer, models.parameters(), ema, models, args.ema, step)
        pool.refresh(step, args.refresh)
        step += 1
        ground_window.append(ground.item())
        if step % 50 == 0 and args.ground > 0:
            _log(run_dir, dict(stage="unet_ground", step=step, ground_loss=float(np.mean(ground_window)),
                               weight=args.ground))
            ground_window = []
        window = log_window(run_dir, "unet", step, args.steps, window + [loss.item()], lr, start)
        if step % args.save_every == 0 or step == args.steps:
            _atomic_save(dict(models=models.state_dict(), ema=ema.state_dict(),
                              optimizer=optimizer.state_dict(), step=step, warm_start=warm_start,
                              elapsed=time.time() - start, prediction=args.prediction), ckpt_path)
    _log(run_dir, dict(stage="unet_done", step=step, wall_s=round(time.time() - start, 1)))


def _inherit_history(packed: Path, run_dir: Path) -> None:
    """Put the packed run's log and commands before this run's, so that an export's training record
    holds the whole lineage of the weights."""
    for name in ("log.jsonl", "commands.txt"):
        if (packed / name).is_file():
            own = (run_dir / name).read_text() if (run_dir / name).is_file() else ""
            (run_dir / name).write_text((packed / name).read_text() + own)


def _load_packed(directory: Path, models, ema) -> tuple[int, float]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(directory / "resume.safetensors")
    models.load_state_dict({k[len("models."):]: v for k, v in tensors.items() if k.startswith("models.")})
    ema.load_state_dict({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
    with safe_open(directory / "resume.safetensors", framework="pt") as handle:
        meta = handle.metadata()
    return int(meta["step"]), float(meta["elapsed"])


def pack(args) -> None:
    """Write a resume state (VAE folder, weights + EMA as safetensors, log, commands) to --dest
    (default runs/packed: resume states are kept out of the repository tree; see training/README.md)."""
    from safetensors.torch import save_file

    run_dir = Path(args.run_dir)
    dest = Path(args.dest or "runs/packed")
    dest.mkdir(parents=True, exist_ok=True)
    state = torch.load(run_dir / "unet.ckpt", weights_only=True)
    tensors = {f"models.{k}": v.contiguous() for k, v in state["models"].items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in state["ema"].items()})
    save_file(tensors, dest / "resume.safetensors",
              metadata=dict(step=str(state["step"]), elapsed=str(state["elapsed"]),
                            prediction=_prediction(state)))
    for part in ("vae", "tokenizer"):
        if (dest / part).exists():
            shutil.rmtree(dest / part)
        shutil.copytree(run_dir / part, dest / part)
    for name in ("log.jsonl", "commands.txt"):
        shutil.copy(run_dir / name, dest / name)
    print(f"packed step {state['step']} into {dest}", flush=True)


# ---------------------------------------------------------------- export
def build_pipeline(run_dir: Path, use_ema: bool = True):
    """Assemble a StableDiffusionPipeline from a run directory's VAE and UNet checkpoint."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = shapes_models.run_tokenizer(run_dir / "tokenizer")
    vae = AutoencoderKL.from_pretrained(run_dir / "vae")
    text_encoder = CLIPTextModel(CLIPTextConfig(**shapes_models.text_encoder_config(len(tokenizer))))
    unet = UNet2DConditionModel(**shapes_models.unet_config())
    state = torch.load(run_dir / "unet.ckpt", weights_only=True)
    models = torch.nn.ModuleDict(dict(unet=unet, text_encoder=text_encoder))
    models.load_state_dict(state["ema" if use_ema else "models"])
    pipe = StableDiffusionPipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer, unet=unet.eval(),
        scheduler=DDIMScheduler(**shapes_models.scheduler_config(_prediction(state))),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, state["step"], state["elapsed"]


def export(args) -> None:
    run_dir = Path(args.run_dir)
    dest = Path(args.dest) if args.dest else shapes_models.weights_path("text2image")
    pipe, step, elapsed = build_pipeline(run_dir)
    if args.fp16:
        pipe.to(torch.float16)
    marker = shapes_models.marker("text2image")  # read first: dest may be the shipped folder
    pipe.save_pretrained(dest, safe_serialization=True)
    (dest / MARKER).write_text(marker)
    commands = (run_dir / "commands.txt").read_text().splitlines() if (run_dir / "commands.txt").exists() else []
    log = _read_log(run_dir)
    vae_done = [r for r in log if r["stage"] == "vae_done"]
    decoder_done = [r for r in log if r["stage"] == "decoder_done"]
    colour_done = [r for r in log if r["stage"] == "vae_colour_done"]
    unet_logs = [r for r in log if r["stage"] == "unet"]
    record = dict(
        pipeline="text2image", commands=commands, seed=args.seed, unet_steps=step,
        unet_wall_s=round(elapsed, 1), vae=vae_done[-1] if vae_done else None,
        vae_decoder_finetune=decoder_done[-1] if decoder_done else None,
        vae_colour=colour_done[-1] if colour_done else None,
        prediction=pipe.scheduler.config.prediction_type,
        final_loss=unet_logs[-1]["loss"] if unet_logs else None,
        loss_curve=[dict(step=r["step"], loss=round(r["loss"], 5)) for r in unet_logs[::20]],
        weights_dtype="float16" if args.fp16 else "float32",
        sampler=json.loads(marker)["sampler"],
        torch=torch.__version__,
    )
    (dest / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"exported step {step} to {dest}", flush=True)


def install_vae(args) -> None:
    """Install the run's VAE (decoder fine-tuned by ``vae-decoder``) into exported pipelines.

    ``--dest`` names pipeline folders, comma-separated. Each one's VAE must have the same encoder
    (``quant_conv`` included) as the run's, so every latent its UNet was trained on is unchanged and
    only decoding differs; any mismatch raises before anything is written. Weights are saved in
    float16 (as shipped) and the stage's log is added to each ``training.json`` as
    ``vae_decoder_backgrounds``.
    """
    from diffusers import AutoencoderKL

    run_dir = Path(args.run_dir)
    if not args.dest:
        raise ValueError("install-vae needs --dest, the pipeline folder(s) to install into")
    log = _read_log(run_dir)
    done = [r for r in log if r["stage"] == "decoder_done"]
    if not done:
        raise ValueError(f"--run-dir {run_dir} has no finished vae-decoder stage")
    vae = AutoencoderKL.from_pretrained(run_dir / "vae", torch_dtype=torch.float16)
    new_state = vae.state_dict()
    dests = [Path(d) for d in args.dest.split(",")]
    for dest in dests:
        old_state = AutoencoderKL.from_pretrained(dest / "vae", torch_dtype=torch.float16).state_dict()
        changed = [k for k in old_state if k.startswith(("encoder.", "quant_conv."))
                   and not torch.equal(old_state[k], new_state[k])]
        if changed:
            raise ValueError(f"--dest {dest}: its VAE encoder differs from {run_dir / 'vae'} ({changed[0]}, ...); "
                             "installing would change the latents its UNet was trained on")
    commands = (run_dir / "commands.txt").read_text().splitlines()
    record = dict(commands=commands, result=done[-1],
                  loss_curve=[dict(step=r["step"], loss=round(r["loss"], 5))
                              for r in log if r["stage"] == "decoder"][::10])
    for dest in dests:
        vae.save_pretrained(dest / "vae", safe_serialization=True)
        training = json.loads((dest / "training.json").read_text())
        training["vae_decoder_backgrounds"] = record
        (dest / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        print(f"installed {run_dir / 'vae'} into {dest}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["vae", "vae-colour", "vae-decoder", "vae-center", "unet", "export", "pack",
                                          "install-vae"])
    parser.add_argument("--run-dir", default="runs/text2image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--kl-weight", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--anneal", type=int, default=4000, help="cosine LR decay over the last N steps")
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--min-snr", type=float, default=5.0)
    parser.add_argument("--prediction", choices=["epsilon", "v_prediction"], default="epsilon",
                        help="unet: what the UNet predicts (v_prediction: x0-weighted loss floor, trailing DDIM)")
    parser.add_argument("--p-uncond", type=float, default=0.1)
    parser.add_argument("--word-drop", type=float, default=0.0,
                        help="unet: share of captions trained with a random subset of their words removed, so the "
                             "model learns that an unnamed attribute is free and a dropped filler word changes nothing")
    parser.add_argument("--filler-drop", type=float, default=0.0,
                        help="unet: share of captions trained with a random subset of their filler words removed "
                             "(drop_fillers); content words and their grounding targets stay")
    parser.add_argument("--ground", type=float, default=0.0,
                        help="weight of the token grounding loss on cross-attention (training/grounding.py)")
    parser.add_argument("--pool", type=int, default=16384)
    parser.add_argument("--refresh", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init-vae", default=None, help="vae-colour: the VAE folder to fine-tune")
    parser.add_argument("--colour-weight", type=float, default=1.0)
    parser.add_argument("--colour-gain", type=float, default=2.0, help="raw latent units per unit of [-1, 1] RGB")
    parser.add_argument("--calib", type=int, default=512, help="scenes used to set the VAE scaling factor")
    parser.add_argument("--dest", default=None)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--init-from", default=None, help="a packed directory to start the UNet stage from")
    parser.add_argument("--p-background", type=float, default=None,
                        help="vae-decoder: share of training scenes on a named (black / gray) background; default "
                             "the world's 0.15, under which gray scenes (7.5%%) decoded with washed-out colours")
    args = parser.parse_args(argv)
    if args.stage == "vae-colour" and not args.init_vae:
        parser.error("vae-colour needs --init-vae, the VAE folder to fine-tune")
    check_shares(parser, args, ("word_drop", "filler_drop"))
    defaults = {"vae": (2000, 32, 1e-3), "vae-colour": (1500, 32, 3e-4), "vae-decoder": (3000, 32, 5e-4),
                "vae-center": (0, 0, 0.0), "unet": (20000, 64, 5e-4),
                "export": (0, 0, 0.0), "pack": (0, 0, 0.0), "install-vae": (0, 0, 0.0)}[args.stage]
    args.steps = args.steps if args.steps is not None else defaults[0]
    args.batch = args.batch or defaults[1]
    args.lr = args.lr or defaults[2]
    torch.set_flush_denormal(True)  # denormals from zero-initialised output layers cost ~3.7x
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "commands.txt", "a") as handle:
        command = [sys.executable.split("/")[-1], "-m", "training.train", *(argv or sys.argv[1:])]
        handle.write(shlex.join(command) + "\n")
    {"vae": train_vae, "vae-colour": train_vae_colour,
     "vae-decoder": finetune_decoder, "vae-center": center_vae, "unet": train_unet, "export": export,
     "pack": pack, "install-vae": install_vae}[args.stage](args)


if __name__ == "__main__":
    main()
