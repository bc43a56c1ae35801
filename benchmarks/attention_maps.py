"""Cross-attention heatmaps of the shapes model against exact object masks, and their cost.

Usage: python -m benchmarks.attention_maps [--parts localisation,cost] [--captions 50] [--quick] [--name NAME]

Writes benchmarks/results/attention_maps_<part>.{json,md} (ad-hoc runs: runs/benchmarks/):
- localisation (part ``localisation``, with regions): rendered scenes (exact masks) are encoded, noised to t in
  {100, 300, 500, 700, 900} and passed through the UNet with their caption inside an
  AttentionRecorder (a protocol independent of sample quality). Each colour and shape word's
  heatmap is scored against the mask of the object it names: mIoU (min-max normalised map
  thresholded at tau), pointing game and mass ratio. Which layers to average (a minimum query
  grid) and tau are chosen on --select training-split scenes; the shipped constants
  (DEFAULTS.attention_min_grid / ATTENTION_TAU) are then scored on the held-out scenes, next to
  DAAM's settings (every layer, tau 0.4), per layer and per time group.
- regions: each scene is segmented (k-means over the words' heatmaps, or Felzenszwalb superpixels
  of the image); a colour / shape word is matched right if its best region lies mostly inside its
  object.
- cost (part ``cost``): sampling time with / without recording (same seeds, interleaved) and peak RSS while
  recording 10 vs 50 steps.
"""

from __future__ import annotations

import argparse
import collections
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from ._common import machine, peak_rss_mib, reset_peak_rss, write
from diffexplain.attention import AttentionRecorder, threshold
from diffexplain.explain.regions import match_regions, segment
from diffexplain.metrics import iou, mass_ratio, pointing_game
from diffexplain_shapes import pipelines as shapes
from diffexplain.models.loading import load_pipeline
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain_shapes import sample_scene

DEFAULTS = shapes.defaults("text2image")  # sampler and attention settings the shipped model ships

TIMESTEPS = (100, 300, 500, 700, 900)
GROUP_TIMESTEP = sorted(TIMESTEPS, reverse=True)  # the recorder's time group 0 is the noisiest
ROLES = ("colour", "shape")
MIN_GRIDS = (1, 8, 16)
TAUS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


@torch.no_grad()
def record_rendered(pipe, adapter, scene):
    image = torch.from_numpy(scene.render()).permute(2, 0, 1)[None].float() / 127.5 - 1
    latents = pipe.vae.encode(image).latent_dist.mean * pipe.vae.config.scaling_factor
    context = adapter.encode([scene.caption])
    alphas = pipe.scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(0)
    recorder = AttentionRecorder(pipe.unet, batch_layout="none", time_groups=len(TIMESTEPS))
    with recorder:
        for t in TIMESTEPS:
            noise = torch.randn(latents.shape, generator=generator)
            noisy = alphas[t].sqrt() * latents + (1 - alphas[t]).sqrt() * noise
            pipe.unet(noisy, torch.tensor([t]), encoder_hidden_states=context)
    maps = recorder.maps(pipe.tokenizer, [scene.caption], image_size=(64, 64))
    if any(c.tolist() != [1.0] * len(TIMESTEPS) for c in maps.counts.values()):
        raise RuntimeError("each time group must hold exactly one of the recorded timesteps")
    return maps


def score(heatmap, mask, tau=0.4):
    heatmap = heatmap.numpy()
    return dict(iou=iou(threshold(torch.from_numpy(heatmap), tau).numpy(), mask),
                pointing=float(pointing_game(heatmap, mask)), mass=mass_ratio(heatmap, mask))


def localisation_part(args, pipe, adapter) -> tuple[dict, str]:
    # Settings are chosen on training-split scenes, then measured on held-out ones.
    selection_scenes = [sample_scene(np.random.default_rng([777, i]), split="train") for i in range(args.select)]
    selection = collections.defaultdict(list)
    for scene in selection_scenes:
        maps = record_rendered(pipe, adapter, scene)
        masks = scene.masks()
        for min_grid in MIN_GRIDS:
            layers = maps.layers_at_least(min_grid)
            for index, word in enumerate(scene.words):
                if word.role in ROLES:
                    heatmap = maps.word_heatmap(index, layers=layers)
                    for tau in TAUS:
                        selection[(min_grid, tau)].append(
                            iou(threshold(heatmap, tau).numpy(), masks[word.object_index]))
    selected = max(selection, key=lambda k: np.mean(selection[k]))
    selection_table = {f"min_grid={g}|tau={t}": float(np.mean(v)) for (g, t), v in selection.items()}

    rng = np.random.default_rng(4242)
    scenes = [sample_scene(rng, split="heldout") for _ in range(args.captions)]
    overall = collections.defaultdict(list)
    fine = collections.defaultdict(list)  # the shapes settings: layers >= ATTENTION_MIN_GRID, tau ATTENTION_TAU
    by_layer = collections.defaultdict(list)
    by_group = collections.defaultdict(list)
    region_hits = collections.defaultdict(list)
    layers = None
    for scene in scenes:
        maps = record_rendered(pipe, adapter, scene)
        layers = maps.layers
        masks = scene.masks()
        fine_layers = maps.layers_at_least(DEFAULTS.attention_min_grid)
        rendered = scene.render()
        heatmaps = {"all layers": maps.all_word_heatmaps().numpy(),
                    "fine layers": maps.all_word_heatmaps(layers=fine_layers).numpy()}
        segmentations = {
            ("kmeans_attention", key): segment(rendered, "kmeans_attention", n_segments=len(scene.objects) + 1,
                                               heatmaps=h)
            for key, h in heatmaps.items()}
        segmentations[("felzenszwalb", "fine layers")] = segment(rendered, "felzenszwalb")
        matches = {key: match_regions(labels, heatmaps[key[1]], maps.words[0])
                   for key, labels in segmentations.items()}
        for index, word in enumerate(scene.words):
            if word.role not in ROLES:
                continue
            mask = masks[word.object_index]
            overall[word.role].append(score(maps.word_heatmap(index), mask))
            fine[word.role].append(score(maps.word_heatmap(index, layers=fine_layers), mask, DEFAULTS.attention_tau))
            for name in maps.layers:
                by_layer[(word.role, name)].append(score(maps.word_heatmap(index, layers=[name]), mask))
            for group in range(len(TIMESTEPS)):
                heatmap = maps.word_heatmap(index, time_groups=[group])
                by_group[(word.role, GROUP_TIMESTEP[group])].append(score(heatmap, mask))
            for key, match in matches.items():
                region = match.labels == match.best_region[index]
                region_hits[(word.role, key)].append(float((region & mask).sum() > 0.5 * region.sum()))

    def summary(rows):
        return {k: float(np.nanmean([r[k] for r in rows])) for k in ("iou", "pointing", "mass")}

    localisation = {role: summary(rows) for role, rows in overall.items()}
    localisation_fine = {role: summary(rows) for role, rows in fine.items()}
    per_layer = {f"{role}|{name}": summary(rows) for (role, name), rows in by_layer.items()}
    per_group = {f"{role}|t={t}": summary(rows) for (role, t), rows in by_group.items()}
    regions_acc = {f"{role}|{seg}|{maps_key}": float(np.mean(v)) for (role, (seg, maps_key)), v in region_hits.items()}

    payload = dict(n_captions=len(scenes), n_selection=len(selection_scenes), timesteps=TIMESTEPS,
                   localisation_daam=localisation, localisation_shapes_settings=localisation_fine,
                   shapes_settings=dict(min_grid=DEFAULTS.attention_min_grid, tau=DEFAULTS.attention_tau),
                   selected_on_training_split=dict(min_grid=selected[0], tau=selected[1]),
                   selection_miou=selection_table, per_layer=per_layer,
                   per_time=per_group, region_word_accuracy=regions_acc, machine=machine())
    grid = DEFAULTS.attention_min_grid
    settings = f"layers with a grid >= {grid}x{grid}, tau {DEFAULTS.attention_tau}"
    lines = [f"# Cross-attention localisation on {len(scenes)} held-out rendered scenes (t in {TIMESTEPS})", "",
             f"Shapes settings ({settings}; `DEFAULTS.attention_min_grid`, `DEFAULTS.attention_tau`). "
             f"Best on {len(selection_scenes)} training-split scenes: min grid {selected[0]}, tau {selected[1]} "
             f"(mIoU {np.mean(selection[selected]):.3f})"
             + (" - the same." if selected == (DEFAULTS.attention_min_grid, DEFAULTS.attention_tau)
                else " - DIFFERENT from the shipped constants."), "",
             "| word role | mIoU | pointing game | mass ratio |", "|---|---|---|---|"]
    lines += [f"| {role} | {v['iou']:.3f} | {v['pointing']:.3f} | {v['mass']:.2f} |"
              for role, v in localisation_fine.items()]
    lines += ["", "DAAM's settings (every layer, tau 0.4):", "",
              "| word role | mIoU | pointing game | mass ratio |", "|---|---|---|---|"]
    lines += [f"| {role} | {v['iou']:.3f} | {v['pointing']:.3f} | {v['mass']:.2f} |"
              for role, v in localisation.items()]
    lines += ["", "Region -> word: a word's best region (highest attention mass per area) lies mostly inside its "
              "object.", "", "| segmenter | heatmaps | colour | shape |", "|---|---|---|---|"]
    for seg, maps_key in sorted({tuple(k.split("|")[1:]) for k in regions_acc}):
        lines.append(f"| {seg} | {maps_key} | {regions_acc[f'colour|{seg}|{maps_key}']:.3f} | "
                     f"{regions_acc[f'shape|{seg}|{maps_key}']:.3f} |")
    lines += ["", "| layer | colour mIoU | colour pointing | shape mIoU | shape pointing |", "|---|---|---|---|---|"]
    for name in layers or ():
        c, s = per_layer.get(f"colour|{name}", {}), per_layer.get(f"shape|{name}", {})
        lines.append(f"| {name} | {c.get('iou', float('nan')):.3f} | {c.get('pointing', float('nan')):.3f} | "
                     f"{s.get('iou', float('nan')):.3f} | {s.get('pointing', float('nan')):.3f} |")
    lines += ["", "| t | colour mIoU | colour pointing | shape mIoU | shape pointing |", "|---|---|---|---|---|"]
    for t in TIMESTEPS:
        c, s = per_group.get(f"colour|t={t}", {}), per_group.get(f"shape|t={t}", {})
        lines.append(f"| {t} | {c.get('iou', float('nan')):.3f} | {c.get('pointing', float('nan')):.3f} | "
                     f"{s.get('iou', float('nan')):.3f} | {s.get('pointing', float('nan')):.3f} |")
    return payload, "\n".join(lines + [""])


def cost_part(args, pipe, adapter) -> tuple[dict, str]:
    """Recording overhead (same seeds, interleaved rounds in alternating order, median of the per-round
    ratios: one round takes seconds on this model, so a single pair is mostly noise) and memory vs steps."""
    rng = np.random.default_rng(4242)  # the localisation part's held-out scenes
    prompts = [sample_scene(rng, split="heldout").caption for _ in range(COST_PROMPTS)]
    seeds = list(range(len(prompts)))

    def timed(record: bool) -> float:
        start = time.perf_counter()
        if record:
            with AttentionRecorder(pipe):
                adapter.generate(prompts, seeds)
        else:
            adapter.generate(prompts, seeds)
        return time.perf_counter() - start

    adapter.generate(prompts[:1], [0])  # warm-up
    plain_t, recorded_t = [], []
    for round_ in range(COST_ROUNDS):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        times = {record: timed(record) for record in order}
        plain_t.append(times[False])
        recorded_t.append(times[True])
    overhead = float(np.median(np.array(recorded_t) / np.array(plain_t)) - 1)
    memory = {}
    for steps in (10, 50):
        stepped = TextToImageAdapter(pipe, num_inference_steps=steps, guidance_scale=DEFAULTS.guidance_scale)
        reset_peak_rss()
        base = peak_rss_mib()
        batch = prompts[:stepped.batch_size]  # one pipeline call: the recorder keeps one map per batch row
        with AttentionRecorder(pipe) as recorder:
            stepped.generate(batch, list(range(len(batch))))
        recorder.maps(pipe.tokenizer, batch, image_size=(64, 64))
        memory[steps] = peak_rss_mib() - base

    payload = dict(recording_overhead=overhead, plain_s=plain_t, recorded_s=recorded_t, peak_rss_increase_mib=memory,
                   n_prompts=len(prompts), rounds=COST_ROUNDS, machine=machine())
    table = (f"# Cost of recording cross-attention\n\nRecording overhead: {overhead:+.1%} (median over "
             f"{COST_ROUNDS} interleaved rounds of the recorded / plain time ratio; {len(prompts)} prompts, "
             f"{adapter.num_inference_steps} steps). Peak RSS increase while recording: "
             f"10 steps {memory[10]:.1f} MiB, 50 steps {memory[50]:.1f} MiB.\n")
    return payload, table


PARTS = ("localisation", "cost")
COST_PROMPTS, COST_ROUNDS = 32, 7


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, among {PARTS}")
    parser.add_argument("--captions", type=int, default=50)
    parser.add_argument("--select", type=int, default=40, help="training-split scenes that choose layers and tau")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="shapes", help="'shapes' or an exported pipeline directory")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    if args.quick:
        args.captions, args.select = 5, 5
    torch.set_flush_denormal(True)
    pipe = load_pipeline(args.model)
    adapter = TextToImageAdapter(pipe, num_inference_steps=DEFAULTS.num_inference_steps,
                                 guidance_scale=DEFAULTS.guidance_scale)
    current = args.name is None and args.model == "shapes" and (args.captions, args.select) == (50, 40)
    for part in parts:
        payload, table = (localisation_part if part == "localisation" else cost_part)(args, pipe, adapter)
        write(f"{args.name or 'attention_maps'}_{part}", payload, table, current=current)


if __name__ == "__main__":
    main()
