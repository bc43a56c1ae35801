"""Train the shapes editing pipelines, starting from the trained text2image model.

    python -m training.train_edits pix2pix          --run-dir runs/pix2pix --steps 6000
    python -m training.train_edits narrow           --run-dir runs/inpaint --channels 4
    python -m training.train_edits inpaint          --run-dir runs/inpaint --base runs/inpaint/base4
    python -m training.train_edits paint_by_example --run-dir runs/pbe     --steps 6000
    python -m training.train_edits export           --run-dir runs/pix2pix --kind pix2pix --fp16
    python -m training.train_edits pix2pix --run-dir runs/p2p_ft --init-from runs/step2900  # see training/README.md

diffusers' StableDiffusionInpaintPipeline runs only on 4-channel latents, and the shapes VAE has 8.
``narrow`` therefore derives from text2image a pipeline restricted to the top ``--channels``
principal directions of its latents (uncentred PCA over training scenes): the VAE's encoder output
and decoder input and the UNet's ``conv_in`` / ``conv_out`` are folded with the projection, exactly
except for the decoder's input bias, which a short distillation against the original decoder
repairs (the only training); inpaint then starts from that base.

``--init-from`` starts a run from an exported pipeline of the same kind (its weights and, for pix2pix,
its tokenizer); the optimizer and the LR schedule start afresh, and the export records both runs.

Every model reuses the shapes VAE (frozen). The UNet starts from text2image's with ``conv_in``
widened by zero-initialised input channels (as InstructPix2Pix does), so training starts from a
working denoiser: pix2pix takes [noisy target, source latents] (16 channels), inpaint and
paint_by_example take [noisy target, mask, masked-image latents] (17 channels), with the masks in
each diffusers pipeline's own convention (inpaint: 1 = repaint; Paint-by-Example: 1 = keep). The
text encoder of the instruction models extends text2image's to the edit vocabulary, copying the
rows of shared words. Paint-by-Example conditions on a small CLIP vision encoder trained from
scratch on reference crops. Conditioning dropout: pix2pix drops the instruction, the source image
or both 5% of the time each (as InstructPix2Pix); the others drop their condition 10%.
pix2pix can also train terse instructions (``--filler-drop``: filler words removed, content kept)
and reweight edit kinds in its pool (``--kind-weights add=2,move=2``); the shipped model used both.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffexplain.models.defaults import MARKER
from diffexplain_shapes import pipelines as shapes_models
from diffexplain_shapes.edits import EDIT_KINDS, instruction_vocabulary, sample_edit
from diffexplain_shapes.scene import sample_scene
from diffexplain_shapes.tasks import REFERENCE_SIZE, box_mask, reference_crop

from .train import (
    _atomic_save,
    _read_log,
    check_shares,
    denoising_loss,
    drop_fillers,
    drop_words,
    log_window,
    optimise,
)

KINDS = ("pix2pix", "inpaint", "paint_by_example")


def widen_conv_in(unet, in_channels: int):
    """A copy of ``unet`` taking ``in_channels`` inputs; the new input channels start at zero."""
    from diffusers import UNet2DConditionModel

    config = dict(unet.config)
    old = config["in_channels"]
    config["in_channels"] = in_channels
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = torch.zeros(state["conv_in.weight"].shape[0], in_channels, *state["conv_in.weight"].shape[2:])
    weight[:, :old] = state["conv_in.weight"]
    state["conv_in.weight"] = weight
    wide.load_state_dict(state)
    return wide


def extend_text_encoder(text_encoder, tokenizer, new_tokenizer):
    """A copy of ``text_encoder`` for ``new_tokenizer``: rows of tokens both vocabularies share are
    copied, new tokens start at the mean row."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**{**text_encoder.config.to_dict(), "vocab_size": len(new_tokenizer)})
    model = CLIPTextModel(config)
    state = {k: v for k, v in text_encoder.state_dict().items() if "token_embedding" not in k}
    model.load_state_dict(state, strict=False)
    old_table = text_encoder.get_input_embeddings().weight.detach()
    old_vocab = tokenizer.get_vocab()
    table = old_table.mean(0, keepdim=True).repeat(len(new_tokenizer), 1)
    for token, index in new_tokenizer.get_vocab().items():
        if token in old_vocab:
            table[index] = old_table[old_vocab[token]]
    model.get_input_embeddings().weight.data.copy_(table)
    return model


@torch.no_grad()
def latent_basis(vae, channels: int, calib: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The top principal directions of ``vae``'s latent means over ``calib`` training scenes.

    Uncentred (second moment), so the projection is linear with no offset and folds exactly into
    the convolutions around the latent. Returns (basis (C, channels) with orthonormal columns,
    cumulative share of the second moment per kept direction (C,)).
    """
    rng = np.random.default_rng([seed, 11])
    means = []
    for start in range(0, calib, 128):
        scenes = [sample_scene(rng, split="train") for _ in range(min(128, calib - start))]
        means.append(vae.encode(_images_from(s.render() for s in scenes)).latent_dist.mean)
    z = torch.cat(means).permute(0, 2, 3, 1).reshape(-1, vae.config.latent_channels).double()
    values, vectors = torch.linalg.eigh(z.T @ z / len(z))
    values, vectors = values.flip(0), vectors.flip(1)
    return vectors[:, :channels].float(), (values.cumsum(0) / values.sum()).float()


def _mix_out(conv, matrix: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``matrix @ conv(x) + bias`` as one convolution (matrix: (new_out, out))."""
    weight = torch.einsum("no,oikl->nikl", matrix, conv.weight.detach())
    out_bias = matrix @ conv.bias.detach() + (0 if bias is None else bias)
    return weight, out_bias


def narrow_pipeline(base, basis: torch.Tensor):
    """``base`` (a text2image pipeline) restricted to latents ``m' = basis.T @ m``.

    VAE: the encoder's mean is projected (the log-variance set to e^-30, so sampling returns the
    mean) and the decoder reads ``basis @ m'``; UNet: ``conv_in`` reads ``basis @ x'`` and
    ``conv_out`` writes ``basis.T @ out``. The scaling factor is kept, so noise levels match.
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    old, channels = base.vae, basis.shape[1]
    if getattr(old, "quant_conv", None) is None or getattr(old, "post_quant_conv", None) is None:
        raise ValueError("narrow_pipeline folds the projection into the VAE's quant_conv and post_quant_conv; "
                         "this VAE has none (use_quant_conv / use_post_quant_conv false)")
    if basis.ndim != 2 or basis.shape[0] != old.config.latent_channels or not 0 < channels < basis.shape[0]:
        raise ValueError(f"basis must be ({old.config.latent_channels}, k) with 0 < k < "
                         f"{old.config.latent_channels}, got {tuple(basis.shape)}")
    vae = AutoencoderKL.from_config({**old.config, "latent_channels": channels})
    state = {k: v.clone() for k, v in old.state_dict().items()}
    latent = old.config.latent_channels
    # the encoder's conv_out feeds the 1x1 quant_conv: fold both, then the projection, into conv_out
    quant_w = old.quant_conv.weight.detach()[:latent, :, 0, 0]  # (latent, 2 latent): the mean rows
    quant_b = old.quant_conv.bias.detach()[:latent]
    mean_w, mean_b = _mix_out(old.encoder.conv_out, basis.T @ quant_w, basis.T @ quant_b)
    state["encoder.conv_out.weight"] = torch.cat([mean_w, torch.zeros_like(mean_w)])
    state["encoder.conv_out.bias"] = torch.cat([mean_b, torch.full_like(mean_b, -30.0)])
    state["quant_conv.weight"] = torch.eye(2 * channels)[:, :, None, None]
    state["quant_conv.bias"] = torch.zeros(2 * channels)
    # post_quant_conv (1x1) becomes identity; its mixing and the basis fold into decoder.conv_in.
    # Its bias cannot fold exactly through conv_in's zero padding (and GroupNorm spreads the border
    # error), so ``distill_decoder`` repairs the decoder afterwards.
    post_w = old.post_quant_conv.weight.detach()[:, :, 0, 0]
    state["post_quant_conv.weight"] = torch.eye(channels)[:, :, None, None]
    state["post_quant_conv.bias"] = torch.zeros(channels)
    conv_in = old.decoder.conv_in
    state["decoder.conv_in.weight"] = torch.einsum("oikl,ij->ojkl", conv_in.weight.detach(), post_w @ basis)
    state["decoder.conv_in.bias"] = conv_in.bias.detach() + torch.einsum(
        "oikl,i->o", conv_in.weight.detach(), old.post_quant_conv.bias.detach())
    vae.load_state_dict(state)
    unet = UNet2DConditionModel.from_config({**base.unet.config, "in_channels": channels, "out_channels": channels})
    state = {k: v.clone() for k, v in base.unet.state_dict().items()}
    state["conv_in.weight"] = torch.einsum("oikl,ij->ojkl", base.unet.conv_in.weight.detach(), basis)
    state["conv_out.weight"], state["conv_out.bias"] = _mix_out(base.unet.conv_out, basis.T)
    unet.load_state_dict(state)
    return StableDiffusionPipeline(vae=vae, unet=unet, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                   scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def distill_decoder(vae, teacher, basis: torch.Tensor, latents: torch.Tensor, steps: int, seed: int = 0,
                    batch: int = 32, lr: float = 2e-4) -> list[float]:
    """Train ``vae``'s decoder to reproduce ``teacher``'s decoding of ``basis @ m'`` for the
    narrowed latents ``latents`` (N, channels, h, w); returns the loss every 25 steps."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        targets = torch.cat([teacher.decode(torch.einsum("bkhw,ck->bchw", chunk, basis)).sample
                             for chunk in latents.split(128)])
    params = [p for name, p in vae.named_parameters() if name.startswith(("decoder.", "post_quant_conv."))]
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        pick = torch.randint(0, len(latents), (batch,), generator=gen)
        loss = torch.nn.functional.mse_loss(vae.decode(latents[pick]).sample, targets[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            losses.append(round(loss.item(), 6))
    vae.requires_grad_(False)
    return losses


def narrow(args) -> None:
    """Write ``run_dir/base{channels}``: text2image restricted to its top latent directions."""
    run_dir = Path(args.run_dir)
    base = _base(Path(args.base))
    base.vae.requires_grad_(False)
    basis, share = latent_basis(base.vae, args.channels, args.calib, args.seed)
    pipe = narrow_pipeline(base, basis)
    rng = np.random.default_rng([args.seed, 13])
    with torch.no_grad():
        scenes = _images_from(sample_scene(rng, split="train").render() for _ in range(args.calib))
        latents = torch.cat([pipe.vae.encode(chunk).latent_dist.mean for chunk in scenes.split(128)])
    rng = np.random.default_rng([args.seed, 12])
    images = _images_from(sample_scene(rng, split="heldout").render() for _ in range(256))

    def psnr(vae) -> float:
        with torch.no_grad():
            out = vae.decode(vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)
        return round(float(10 * torch.log10(4 / ((out - images) ** 2).mean())), 2)

    before = psnr(pipe.vae)
    start = time.time()
    losses = distill_decoder(pipe.vae, base.vae, basis, latents, args.distill_steps, args.seed)
    dest = run_dir / f"base{args.channels}"
    pipe.save_pretrained(dest, safe_serialization=True)
    record = dict(pipeline="text2image", narrowed_from=str(args.base), channels=args.channels, calib=args.calib,
                  second_moment_share=round(float(share[args.channels - 1]), 4),
                  psnr_db=dict(original=psnr(base.vae), narrowed=before, distilled=psnr(pipe.vae)),
                  distill=dict(steps=args.distill_steps, loss=losses, wall_s=round(time.time() - start, 1)))
    (dest / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record), flush=True)


def parse_kind_weights(spec: str | None) -> np.ndarray | None:
    """``"add=2,move=2"`` -> sampling probabilities over EDIT_KINDS (unnamed kinds weigh 1); None -> None."""
    if not spec:
        return None
    weights = dict.fromkeys(EDIT_KINDS, 1.0)
    for part in spec.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in weights:
            raise ValueError(f"kind_weights names an unknown edit kind {name.strip()!r}; kinds are {EDIT_KINDS}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"kind_weights needs KIND=NUMBER pairs, got {part!r}") from None
        if not weights[name.strip()] >= 0:
            raise ValueError(f"kind_weights must be >= 0, got {part!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"kind_weights must not all be 0, got {spec!r}")
    return np.array([weights[k] / total for k in EDIT_KINDS])


def _sample(kind: str, rng: np.random.Generator, kind_weights: np.ndarray | None = None) -> dict:
    """One training example as arrays: target, conditioning image(s), mask and text."""
    if kind == "pix2pix":
        edit_kind = None if kind_weights is None else str(rng.choice(EDIT_KINDS, p=kind_weights))
        edit = sample_edit(rng, kind=edit_kind, split="train")
        return dict(target=edit.target.render(), source=edit.source.render(), text=edit.instruction,
                    kind=edit.kind, fillers=(edit.relevance == 0).tolist())  # as ground truth
    scene = sample_scene(rng, split="train")
    index = int(rng.integers(len(scene.objects)))
    mask = box_mask(scene, index)
    example = dict(target=scene.render(), mask=mask, text=scene.caption)
    if kind == "paint_by_example":
        example["reference"] = reference_crop(scene, index)
    return example


class EditPool:
    """Encoded training examples, refreshed a few per step (as text2image's latent pool)."""

    def __init__(self, kind, vae, size, seed, kind_weights=None):
        self.kind, self.vae, self.seed, self.kind_weights = kind, vae, seed, kind_weights
        self.scale = vae.config.scaling_factor
        self.items: list[dict] = [None] * size  # type: ignore[list-item]
        for start in range(0, size, 128):
            self._fill(range(start, min(size, start + 128)), np.random.default_rng([seed, 7, start]))

    @torch.no_grad()
    def _fill(self, indices, rng):
        indices = list(indices)
        examples = [_sample(self.kind, rng, self.kind_weights) for _ in indices]
        targets = self.vae.encode(_images_from(e["target"] for e in examples)).latent_dist.mean * self.scale
        if self.kind == "pix2pix":
            conditions = self.vae.encode(_images_from(e["source"] for e in examples)).latent_dist.mean * self.scale
        else:
            keep = 1.0 if self.kind == "inpaint" else 0.0  # inpaint: 1 = repaint; Paint-by-Example: 1 = keep
            masked = []
            for e in examples:
                image = torch.from_numpy(e["target"]).permute(2, 0, 1).float() / 127.5 - 1
                masked.append(image * torch.from_numpy(~e["mask"]).float())
            conditions = self.vae.encode(torch.stack(masked)).latent_dist.mean * self.scale
        for i, e, target, condition in zip(indices, examples, targets, conditions):
            item = dict(target=target, condition=condition, text=e["text"])
            if "fillers" in e:
                item["fillers"] = e["fillers"]
            if self.kind != "pix2pix":
                mask = torch.from_numpy(e["mask"]).float()[None, None]
                small = torch.nn.functional.interpolate(mask, size=target.shape[-2:])[0]  # nearest, as the pipelines
                item["mask"] = small if keep else 1 - small
            if self.kind == "paint_by_example":
                item["reference"] = e["reference"]
            self.items[i] = item

    def refresh(self, step, count):
        rng = np.random.default_rng([self.seed, 8, step])
        self._fill(rng.choice(len(self.items), size=count, replace=False), rng)

    def batch(self, step, size):
        rng = np.random.default_rng([self.seed, 9, step])
        return [self.items[i] for i in rng.choice(len(self.items), size=size, replace=False)], rng


def _images_from(arrays) -> torch.Tensor:
    return torch.from_numpy(np.stack(list(arrays))).permute(0, 3, 1, 2).float() / 127.5 - 1


def check_supported(kind: str, latent_channels: int) -> None:
    """diffusers' StableDiffusionInpaintPipeline hard-codes 4-channel latents (a UNet of 9 or 4
    input channels); the shapes VAE has 8, so an inpainting UNet on it could not be run by that
    pipeline. Refuse up front rather than train a model nobody can sample; ``narrow`` makes a base
    that fits."""
    if kind == "inpaint" and latent_channels != 4:
        raise ValueError(f"kind 'inpaint' needs a VAE with 4 latent channels (StableDiffusionInpaintPipeline accepts "
                         f"only 9- or 4-channel UNets); this base VAE has {latent_channels}. Derive a 4-channel base "
                         f"with `python -m training.train_edits narrow --run-dir RUN` and pass "
                         f"--base RUN/base4")


def _base(base_dir: Path):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(str(base_dir), dtype=torch.float32, local_files_only=True)


def _init_from(kind: str, source: Path, run_dir: Path) -> dict:
    """Prepare ``run_dir`` to start from the exported pipeline in ``source``: its tokenizer is copied
    in (token ids must match its text encoder); returns its training record."""
    record_path = source / "training.json"
    if not (source / "model_index.json").is_file() or not record_path.is_file():
        raise ValueError(f"--init-from must be a pipeline exported by this script; got {str(source)!r}")
    record = json.loads(record_path.read_text())
    expected = "instruct_pix2pix" if kind == "pix2pix" else kind
    if record.get("pipeline") != expected:
        raise ValueError(f"--init-from {str(source)!r} holds a {record.get('pipeline')!r} pipeline, not {expected!r}")
    if kind == "pix2pix" and not (run_dir / "tokenizer").exists():
        shutil.copytree(source / "tokenizer", run_dir / "tokenizer")
    return record


def _load_exported(models: torch.nn.ModuleDict, source: Path) -> None:
    """Copy the weights of the exported pipeline in ``source`` into ``models`` (as float32)."""
    from diffusers import DiffusionPipeline

    from diffexplain.models.loading import load_paint_by_example

    if "image_encoder" in models:  # diffusers' from_pretrained cannot resolve Paint-by-Example's encoder
        pipe = load_paint_by_example(source)
    else:
        pipe = DiffusionPipeline.from_pretrained(str(source), dtype=torch.float32, local_files_only=True)
    for name, module in models.items():
        module.load_state_dict(getattr(pipe, name).state_dict())


def _build(kind: str, base, run_dir: Path):
    """Trainable modules for ``kind``, initialised from the text2image pipeline ``base``, and the
    tokenizer (the edit vocabulary's is built once into ``run_dir/tokenizer``, then loaded)."""
    latent = base.vae.config.latent_channels
    modules = {"unet": widen_conv_in(base.unet, 2 * latent + (0 if kind == "pix2pix" else 1))}
    tokenizer = base.tokenizer
    if kind == "pix2pix":
        tokenizer = shapes_models.run_tokenizer(run_dir / "tokenizer", instruction_vocabulary())
        modules["text_encoder"] = extend_text_encoder(base.text_encoder, base.tokenizer, tokenizer)
    elif kind == "inpaint":
        modules["text_encoder"] = copy.deepcopy(base.text_encoder)
    else:
        from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
        from transformers import CLIPVisionConfig

        config = CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                                  image_size=REFERENCE_SIZE, patch_size=8, projection_dim=128)
        modules["image_encoder"] = PaintByExampleImageEncoder(config, proj_size=base.unet.config.cross_attention_dim)
    return torch.nn.ModuleDict(modules), tokenizer


def _feature_extractor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": REFERENCE_SIZE},
                              crop_size={"height": REFERENCE_SIZE, "width": REFERENCE_SIZE})


def attribution_consistency(difference: torch.Tensor, mask: torch.Tensor, lam: float = 3.0) -> torch.Tensor:
    """-IMACS of the guidance-difference map, differentiable: the model-debugging term of I2AM (Park &
    Jang, ICLR 2025; their consistency loss, weight 0.01) for a single-token reference, whose
    attention map is flat, so the map is |pred(reference) - pred(unconditional)| (channel mean),
    min-max scaled per sample; S_in / S_out its mean inside / outside the mask.

    Args:
        difference: (B, C, h, w) conditional minus unconditional prediction.
        mask: (B, 1, h, w) the inpainting mask at latent resolution (1 = repaint).
    """
    heat = difference.abs().mean(dim=1, keepdim=True)
    low = heat.amin(dim=(2, 3), keepdim=True)
    high = heat.amax(dim=(2, 3), keepdim=True)
    heat = (heat - low) / (high - low + 1e-8)
    inside = (heat * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)
    outside = (heat * (1 - mask)).sum(dim=(1, 2, 3)) / (1 - mask).sum(dim=(1, 2, 3)).clamp(min=1)
    return (lam * outside - inside).mean()


def train(args) -> None:
    from diffusers import DDIMScheduler

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = _base(Path(args.base))
    check_supported(args.kind, base.vae.config.latent_channels)
    ckpt_path = run_dir / "model.ckpt"
    history = _init_from(args.kind, Path(args.init_from), run_dir) if args.init_from else None
    models, tokenizer = _build(args.kind, base, run_dir)
    if history is not None and not ckpt_path.exists():
        _load_exported(models, Path(args.init_from))
        # the earlier record nests whole, so a fine-tune of a fine-tune keeps the full chain
        (run_dir / "init.json").write_text(json.dumps(dict(init_from=args.init_from, earlier_run=history), indent=2)
                                           + "\n")
    ema = copy.deepcopy(models).requires_grad_(False)
    optimizer = torch.optim.AdamW(models.parameters(), lr=args.lr, weight_decay=0.01)
    prediction = base.scheduler.config.prediction_type  # the edit model inherits the base's target
    alphas = DDIMScheduler(**shapes_models.scheduler_config(prediction)).alphas_cumprod.float()
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True)
        models.load_state_dict(state["models"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
    vae = base.vae.eval().requires_grad_(False)
    pool = EditPool(args.kind, vae, args.pool, args.seed, parse_kind_weights(args.kind_weights))
    features = _feature_extractor()
    start = time.time() - elapsed
    window: list[float] = []
    while step < args.steps:
        items, rng = pool.batch(step, args.batch)
        target = torch.stack([i["target"] for i in items])
        condition = torch.stack([i["condition"] for i in items])
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        noise = torch.randn(target.shape, generator=gen)
        t = torch.randint(0, 1000, (len(items),), generator=gen)
        abar = alphas[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * target + (1 - abar).sqrt() * noise
        draw = rng.random(len(items))
        if args.kind == "paint_by_example":
            pixels = features(images=[i["reference"] for i in items], return_tensors="pt").pixel_values
            context = models["image_encoder"](pixels)
            uncond = models["image_encoder"].uncond_vector.expand(len(items), 1, -1)
            context = torch.where(torch.from_numpy(draw < 0.1).view(-1, 1, 1), uncond, context)
        else:
            drop_text = (draw < 0.05) | (draw >= 0.10) & (draw < 0.15) if args.kind == "pix2pix" else draw < 0.1
            texts = ["" if d else i["text"] for d, i in zip(drop_text, items)]
            if args.filler_drop > 0:  # its own stream too
                filler_rng = np.random.default_rng([args.seed, 11, step])
                texts = [drop_fillers(x.split(), i["fillers"], filler_rng)
                         if x and filler_rng.random() < args.filler_drop else x for x, i in zip(texts, items)]
            if args.word_drop > 0:  # its own stream, so runs without word dropout draw the same batches
                drop_rng = np.random.default_rng([args.seed, 10, step])
                texts = [drop_words(x, drop_rng) if x and drop_rng.random() < args.word_drop else x for x in texts]
            ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids
            context = models["text_encoder"](ids).last_hidden_state
        if args.kind == "pix2pix":
            drop_image = (draw >= 0.05) & (draw < 0.15)
            condition = condition * torch.from_numpy(~drop_image).float().view(-1, 1, 1, 1)
            model_input = torch.cat([noisy, condition], dim=1)
        elif args.kind == "inpaint":  # StableDiffusionInpaintPipeline: [latents, mask, masked-image latents]
            model_input = torch.cat([noisy, torch.stack([i["mask"] for i in items]), condition], dim=1)
        else:  # PaintByExamplePipeline: [latents, masked-image latents, mask]
            model_input = torch.cat([noisy, condition, torch.stack([i["mask"] for i in items])], dim=1)
        # a plain float: a numpy scalar in the optimizer state breaks weights_only checkpoint loading
        lr = float(args.lr * min(1.0, (step + 1) / args.warmup) * (0.5 * (1 + np.cos(np.pi * step / args.steps))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        pred = models["unet"](model_input, t, context).sample
        loss = denoising_loss(pred, target, noise, abar, 5.0, prediction)
        if args.attribution_weight > 0:  # paint_by_example: keep the reference's effect inside the mask
            uncond = models["image_encoder"].uncond_vector.expand(len(items), 1, -1)
            free = models["unet"](model_input, t, uncond).sample
            mask = torch.stack([i["mask"] for i in items])
            loss = loss + args.attribution_weight * attribution_consistency(pred - free, mask)
        optimise(loss, optimizer, models.parameters(), ema, models, args.ema, step)
        pool.refresh(step, args.refresh)
        step += 1
        window = log_window(run_dir, args.kind, step, args.steps, window + [loss.item()], lr, start)
        if step % args.save_every == 0 or step == args.steps:
            _atomic_save(dict(models=models.state_dict(), ema=ema.state_dict(), optimizer=optimizer.state_dict(),
                              step=step, elapsed=time.time() - start), ckpt_path)


def export(args) -> None:
    """Write the EMA weights as a diffusers pipeline of the kind's class into the package."""
    from diffusers import (
        DDIMScheduler,
        PaintByExamplePipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionInstructPix2PixPipeline,
    )
    run_dir = Path(args.run_dir)
    base = _base(Path(args.base))
    models, tokenizer = _build(args.kind, base, run_dir)
    state = torch.load(run_dir / "model.ckpt", weights_only=True)
    models.load_state_dict(state["ema"])
    other_record = None
    if args.average_with:  # read before anything is written: the destination may be the same folder
        record_path = Path(args.average_with) / "training.json"
        other_record = json.loads(record_path.read_text()) if record_path.is_file() else None
        other, _ = _build(args.kind, base, run_dir)
        _load_exported(other, Path(args.average_with))
        interpolate_(models, other, args.mix)
    scheduler = DDIMScheduler(**shapes_models.scheduler_config(base.scheduler.config.prediction_type))
    common = dict(vae=base.vae, unet=models["unet"], scheduler=scheduler, safety_checker=None,
                  requires_safety_checker=False)
    if args.kind == "paint_by_example":
        pipe = PaintByExamplePipeline(image_encoder=models["image_encoder"], feature_extractor=_feature_extractor(),
                                      **common)
        name = "paint_by_example"
    else:
        cls = StableDiffusionInstructPix2PixPipeline if args.kind == "pix2pix" else StableDiffusionInpaintPipeline
        pipe = cls(text_encoder=models["text_encoder"], tokenizer=tokenizer, feature_extractor=None, **common)
        name = "instruct_pix2pix" if args.kind == "pix2pix" else "inpaint"
    if args.fp16:
        pipe.to(torch.float16)
    dest = Path(args.dest) if args.dest else shapes_models.WEIGHTS_DIR / name
    marker = shapes_models.marker(name)  # read first: dest may be the shipped folder
    if dest.exists():
        shutil.rmtree(dest)
    pipe.save_pretrained(dest, safe_serialization=True)
    (dest / MARKER).write_text(marker)
    commands = (run_dir / "commands.txt").read_text().splitlines()
    log = _read_log(run_dir)
    record = dict(pipeline=name, commands=commands, steps=state["step"], wall_s=round(state["elapsed"], 1),
                  final_loss=log[-1]["loss"] if log else None, base=str(args.base),
                  weights_dtype="float16" if args.fp16 else "float32")
    base_record = Path(args.base) / "training.json"
    if base_record.is_file():  # a narrowed base (inpaint): keep how it was derived
        derived = json.loads(base_record.read_text())
        if "narrowed_from" in derived:
            record["narrowed_base"] = derived
        if "vae_decoder_backgrounds" in derived:  # the VAE is the base's: so is the record of its decoder
            record["vae_decoder_backgrounds"] = derived["vae_decoder_backgrounds"]
    if (run_dir / "init.json").is_file():  # a fine-tune: keep the record of the run it started from
        init = json.loads((run_dir / "init.json").read_text())
        earlier = init["earlier_run"]
        record.update(init_from=init["init_from"], earlier_run=earlier,
                      total_steps=state["step"] + earlier.get("total_steps", earlier["steps"]))
    if args.average_with:  # the weights are a mix: keep the record of the other side whole
        record.update(averaged_with=args.average_with, mix=args.mix, averaged_record=other_record)
    (dest / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    mixed = f", mixed {args.mix} : {1 - args.mix} with {args.average_with}" if args.average_with else ""
    print(f"exported {name} at step {state['step']}{mixed} to {dest}", flush=True)


def interpolate_(models: torch.nn.Module, other: torch.nn.Module, mix: float) -> None:
    """Set every floating-point weight of ``models`` to ``mix * models + (1 - mix) * other``, in place.

    Both must have the same architecture; ``mix`` 1 keeps ``models``, 0 copies ``other``.
    """
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    theirs = other.state_dict()
    with torch.no_grad():
        for key, tensor in models.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(mix * tensor + (1 - mix) * theirs[key].to(tensor.dtype))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train_edits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*KINDS, "export", "narrow"])
    parser.add_argument("--kind", choices=KINDS, help="for export: which model")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--base", default=str(shapes_models.WEIGHTS_DIR / "text2image"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--pool", type=int, default=8192)
    parser.add_argument("--refresh", type=int, default=8)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--word-drop", type=float, default=0.0,
                        help="share of instructions trained with a random subset of their words removed "
                             "(see train.drop_words)")
    parser.add_argument("--filler-drop", type=float, default=0.0,
                        help="pix2pix: share of instructions trained with a random subset of their filler words "
                             "removed (see train.drop_fillers)")
    parser.add_argument("--kind-weights", default=None,
                        help='pix2pix: relative frequency of edit kinds in the training pool, e.g. "add=2,move=2" '
                             "(unnamed kinds 1; default uniform)")
    parser.add_argument("--init-from", default=None,
                        help="an exported pipeline of the same kind to start from (fresh optimizer and LR schedule)")
    parser.add_argument("--attribution-weight", type=float, default=0.0,
                        help="paint_by_example: weight of the attribution-consistency term (I2AM's model "
                             "debugging: -IMACS of the guidance difference; the paper's 0.01)")
    parser.add_argument("--dest", default=None)
    parser.add_argument("--channels", type=int, default=4, help="for narrow: latent channels to keep")
    parser.add_argument("--calib", type=int, default=2048, help="for narrow: training scenes for the PCA")
    parser.add_argument("--distill-steps", type=int, default=400, help="for narrow: decoder repair steps")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--average-with", default=None,
                        help="for export: an exported pipeline of the same kind to average the run's weights with")
    parser.add_argument("--mix", type=float, default=0.5,
                        help="for export with --average-with: the run's share of each weight [0.5]")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage not in ("export", "narrow"):
        args.kind = args.stage
    elif args.stage == "export" and args.kind is None:
        parser.error("export needs --kind")
    if args.attribution_weight and args.stage != "paint_by_example":
        parser.error("--attribution-weight applies to paint_by_example only")
    if args.stage != "pix2pix" and (args.filler_drop or args.kind_weights):
        parser.error("--filler-drop and --kind-weights apply to pix2pix only")
    if args.average_with and args.stage != "export":
        parser.error("--average-with applies to export only")
    check_shares(parser, args, ("word_drop", "filler_drop", "mix"))
    try:
        parse_kind_weights(args.kind_weights)
    except ValueError as error:
        parser.error(str(error))
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "commands.txt", "a") as handle:
        command = [sys.executable.split("/")[-1], "-m", "training.train_edits", *(argv or sys.argv[1:])]
        handle.write(shlex.join(command) + "\n")
    {"export": export, "narrow": narrow}.get(args.stage, train)(args)


if __name__ == "__main__":
    main()
