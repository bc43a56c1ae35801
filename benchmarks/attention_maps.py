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

from diffexplain.attention import AttentionMaps, AttentionRecorder, threshold
from diffexplain.attention.regions import match_regions, segment
from diffexplain.metrics import iou, mass_ratio, pointing_game
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from diffexplain_shapes import pipelines as shapes
from diffexplain_shapes import sample_scene

from ._common import machine, peak_rss_mib, reset_peak_rss, write

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
    maps = AttentionMaps.from_recorder(recorder, pipe.tokenizer, [scene.caption], (64, 64))
    if any(c.tolist() != [1.0] * len(TIMESTEPS) for c in maps.counts.values()):
        raise RuntimeError("each time group must hold exactly one of the recorded timesteps")
    return maps


SIGMAS = tuple(t / 1000 for t in TIMESTEPS)  # flow matching: x_t = (1 - s) x0 + s noise, t = 1000 s
FLUX_SUBSETS = ("double", "single", "both")
VIEWS = ("attention", "output")


@torch.no_grad()
def record_rendered_flux(pipe, scene, view: str, max_sequence_length: int):
    """A Flux transformer's maps of a rendered scene noised to each sigma in ``SIGMAS``, in one view:
    "attention" (the image -> text block of the joint softmax, double- and single-stream blocks) or
    "output" (ConceptAttention's output space, double-stream blocks)."""
    from diffexplain.attention.concept import ConceptAttentionRecorder

    image = torch.from_numpy(scene.render()).permute(2, 0, 1)[None].float() / 127.5 - 1
    vae = pipe.vae
    latents = (vae.encode(image).latent_dist.mean - vae.config.shift_factor) * vae.config.scaling_factor
    _, channels, height, width = latents.shape
    packed = pipe._pack_latents(latents, 1, channels, height, width)
    img_ids = pipe._prepare_latent_image_ids(1, height // 2, width // 2, packed.device, packed.dtype)
    embeds, pooled, text_ids = pipe.encode_prompt(scene.caption, None, max_sequence_length=max_sequence_length)
    generator = torch.Generator().manual_seed(0)
    recorder_class = ConceptAttentionRecorder if view == "output" else AttentionRecorder
    recorder = recorder_class(pipe, batch_layout="none", time_groups=len(TIMESTEPS))
    with recorder:
        for sigma in SIGMAS:
            noise = torch.randn(packed.shape, generator=generator)
            pipe.transformer(hidden_states=(1 - sigma) * packed + sigma * noise, timestep=torch.tensor([sigma]),
                             guidance=None, pooled_projections=pooled, encoder_hidden_states=embeds,
                             txt_ids=text_ids, img_ids=img_ids, return_dict=False)
    maps = recorder.maps([scene.caption], image_size=(64, 64),
                         pipeline_kwargs=dict(max_sequence_length=max_sequence_length))
    if any(c.tolist() != [1.0] * len(TIMESTEPS) for c in maps.counts.values()):
        raise RuntimeError("each time group must hold exactly one of the recorded timesteps")
    return maps


def flux_layers(maps, subset: str) -> list[str]:
    """The recorded layers of a subset: "double" (double-stream blocks), "single", "both"."""
    double = [n for n in maps.layers if n.startswith("transformer_blocks.")]
    single = [n for n in maps.layers if n.startswith("single_transformer_blocks.")]
    return {"double": double, "single": single, "both": double + single}[subset]


def flux_localisation_part(args, pipe) -> tuple[dict, str]:
    """Both views side by side on the shapes Flux model. For each view, which layers (a subset or
    one block), which time groups (all, or one) and tau are chosen on training-split scenes; the
    choice is then scored on held-out scenes (mIoU at tau, pointing game, mass ratio)."""
    window = int(dict(shapes.defaults("flux").pipeline_args)["max_sequence_length"])
    selection_scenes = [sample_scene(np.random.default_rng([777, i]), split="train") for i in range(args.select)]
    rng = np.random.default_rng(4242)
    scenes = [sample_scene(rng, split="heldout") for _ in range(args.captions)]
    payload: dict = dict(n_captions=len(scenes), n_selection=len(selection_scenes), sigmas=SIGMAS, views={})
    lines = [f"# Flux attention localisation: both views on {len(scenes)} held-out rendered scenes "
             f"(sigma in {SIGMAS})", "",
             f"Layers, time groups and tau chosen per view and per word role (colour / shape) on "
             f"{len(selection_scenes)} training-split scenes (mIoU; and, in the \"by pointing\" row, layers and "
             "time chosen by the pointing game on the same scenes); held-out scores of each choice, and of every "
             "layer subset with all time groups at the colour words' tau.", "",
             "| view | layers | time groups | tau | colour mIoU | colour pointing | shape mIoU | shape pointing | "
             "mass ratio (colour / shape) |", "|---|---|---|---|---|---|---|---|---|"]
    for view in VIEWS:
        choices = []
        selection = collections.defaultdict(list)
        pointing = collections.defaultdict(list)  # the pointing game needs no tau: chosen on its own too
        for scene in selection_scenes:
            maps = record_rendered_flux(pipe, scene, view, window)
            if not choices:
                subsets = ["double"] + (["single", "both"] if view == "attention" else [])
                layer_options = [(s, tuple(flux_layers(maps, s))) for s in subsets] + \
                    [(n, (n,)) for n in maps.layers]
                time_options = [("all", None)] + [(f"t={GROUP_TIMESTEP[g]}", (g,)) for g in range(len(TIMESTEPS))]
                choices = [(lo, to) for lo in layer_options for to in time_options]
            masks = scene.masks()
            for index, word in enumerate(scene.words):
                if word.role not in ROLES:
                    continue
                for (lname, layers), (tname, groups) in choices:
                    heatmap = maps.word_heatmap(index, layers=list(layers), time_groups=groups)
                    pointing[(word.role, lname, tname)].append(float(pointing_game(heatmap, masks[word.object_index])))
                    for tau in TAUS:
                        selection[(word.role, lname, tname, tau)].append(
                            iou(threshold(heatmap, tau).numpy(), masks[word.object_index]))
        # each word role (colour, shape) chooses its own layers, time and tau on the training scenes
        best_by_role = {role: max((k for k in selection if k[0] == role), key=lambda k: np.mean(selection[k]))[1:]
                        for role in ROLES}
        best_pointing = {role: max((k for k in pointing if k[0] == role), key=lambda k: np.mean(pointing[k]))[1:]
                         for role in ROLES}
        best = best_by_role["colour"]
        layer_lookup = {lname: layers for (lname, layers), _ in choices}
        time_lookup = {tname: groups for _, (tname, groups) in choices}
        rows = collections.defaultdict(list)
        subsets = ["double"] + (["single", "both"] if view == "attention" else [])
        for scene in scenes:
            maps = record_rendered_flux(pipe, scene, view, window)
            masks = scene.masks()
            for index, word in enumerate(scene.words):
                if word.role not in ROLES:
                    continue
                mask = masks[word.object_index]
                chosen = best_by_role[word.role]
                rows[("chosen", word.role)].append(score(
                    maps.word_heatmap(index, layers=list(layer_lookup[chosen[0]]), time_groups=time_lookup[chosen[1]]),
                    mask, chosen[2]))
                by_pointing = best_pointing[word.role]
                rows[("chosen for pointing", word.role)].append(score(
                    maps.word_heatmap(index, layers=list(layer_lookup[by_pointing[0]]),
                                      time_groups=time_lookup[by_pointing[1]]), mask, chosen[2]))
                for subset in subsets:
                    rows[(subset, word.role)].append(score(
                        maps.word_heatmap(index, layers=flux_layers(maps, subset)), mask, best[2]))

        result = {f"{name}|{role}": {k: float(np.nanmean([r[k] for r in values])) for k in ("iou", "pointing", "mass")}
                  for (name, role), values in rows.items()}
        payload["views"][view] = dict(chosen={role: dict(layers=b[0], time=b[1], tau=b[2],
                                                         selection_miou=float(np.mean(selection[(role, *b)])))
                                              for role, b in best_by_role.items()},
                                      chosen_for_pointing={role: dict(layers=b[0], time=b[1],
                                                                      selection_pointing=float(np.mean(
                                                                          pointing[(role, *b)])))
                                                           for role, b in best_pointing.items()}, held_out=result)
        for name in ["chosen", "chosen for pointing"] + subsets:
            c, s = result[f"{name}|colour"], result[f"{name}|shape"]
            picks = best_by_role if name == "chosen" else best_pointing
            first, second = picks["colour"], picks["shape"]
            layers_label = f"{first[0]} / {second[0]}" if name.startswith("chosen") else name
            time_label = f"{first[1]} / {second[1]}" if name.startswith("chosen") else "all"
            tau_label = f"{best[2]} / {best_by_role['shape'][2]}" if name.startswith("chosen") else best[2]
            if name == "chosen for pointing":
                layers_label = f"by pointing: {layers_label}"
            lines.append(f"| {view} | {layers_label} | {time_label} | {tau_label} | {c['iou']:.3f} | "
                         f"{c['pointing']:.3f} | {s['iou']:.3f} | {s['pointing']:.3f} | "
                         f"{c['mass']:.2f} / {s['mass']:.2f} |")
    payload["machine"] = machine()
    return payload, "\n".join(lines + [""])


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
            with AttentionRecorder(adapter):
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
        stepped = TextToImageAdapter(pipe, num_inference_steps=steps, guidance_scale=adapter.guidance_scale)
        reset_peak_rss()
        base = peak_rss_mib()
        batch = prompts[:stepped.batch_size]  # one pipeline call: the recorder keeps one map per batch row
        with AttentionRecorder(stepped) as recorder:
            stepped.generate(batch, list(range(len(batch))))
        recorder.maps()
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
    parser.add_argument("--model", default="shapes",
                        help="'shapes' (UNet), 'flux' (the shapes Flux.1 model: both attention views) or a folder")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    if args.quick:
        args.captions, args.select = 5, 5
    torch.set_flush_denormal(True)
    pipe = load_pipeline(args.model)
    flux = args.model == "flux"
    adapter = TextToImageAdapter(pipe) if flux else TextToImageAdapter(
        pipe, num_inference_steps=DEFAULTS.num_inference_steps, guidance_scale=DEFAULTS.guidance_scale)
    current = args.name is None and args.model in ("shapes", "flux") and (args.captions, args.select) == (50, 40)
    stem = args.name or ("attention_maps_flux" if flux else "attention_maps")
    for part in parts:
        if part == "localisation":
            payload, table = flux_localisation_part(args, pipe) if flux else localisation_part(args, pipe, adapter)
        else:
            payload, table = cost_part(args, pipe, adapter)
        write(f"{stem}_{part}", payload, table, current=current)


if __name__ == "__main__":
    main()
