"""Fidelity and speed of the built-in shapes text-to-image pipeline on held-out captions.

Usage: python -m benchmarks.shapes_fidelity [--parts accuracy,speed] [--model shapes|flux|DIR] [--n 256]
       [--steps N] [--guidance G] [--scheduler pipeline|ddim|dpm|unipc|euler] [--draw N]
       [--split heldout|train] [--name NAME]

``--model flux`` (the shapes Flux pipeline) writes ``shapes_fidelity_flux_<part>``; steps and
guidance default to the model's own (its ``diffexplain.json``).

Parts, each written to benchmarks/results/shapes_fidelity_<part>.{json,md} (with --name, or with
any setting other than the shipped model's on the reported draw, to runs/benchmarks/ instead):
- accuracy: per-attribute accuracy judged by ``diffexplain_shapes.check`` on captions that contain
  a held-out colour-shape pair (never seen in training), overall and by number of objects;
- speed: images/second at batch 1, 8 and 64 (median of three interleaved rounds) and peak RSS
  while generating a batch of 64.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from diffexplain_shapes import check, sample_scene
from diffexplain_shapes import pipelines as shapes

from ._common import machine, peak_rss_mib, reset_peak_rss, write

DEFAULTS = shapes.defaults("text2image")  # sampler and attention settings the shipped model ships

SCHEDULERS = ("pipeline", "ddim", "dpm", "unipc", "euler")  # pipeline: its own (shapes: DDIM); others for sweeps
ATTRIBUTES = ("colour", "count", "shape", "size", "position", "background_ok")
REPORTED_DRAW = 1234  # the captions every reported figure uses; sampler settings are chosen on other draws


def scene_captions(n: int, seed: int = REPORTED_DRAW, split: str = "heldout") -> list[str]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, split=split).caption for _ in range(n)]


def accuracy(adapter, captions):
    hits, totals = collections.Counter(), collections.Counter()
    by_count_hits = collections.defaultdict(collections.Counter)
    by_count_totals = collections.defaultdict(collections.Counter)
    batch = adapter.batch_size
    for start in range(0, len(captions), batch):
        chunk = captions[start:start + batch]
        images = adapter.generate(chunk, list(range(start, start + len(chunk))))
        for caption, image in zip(chunk, images):
            result = check(image, caption)
            n_obj = caption.count(" and ") + caption.count(" with ") + 1
            for attribute in ATTRIBUTES + ("all_ok",):
                value = getattr(result, attribute)
                if value is None:
                    continue
                hits[attribute] += bool(value)
                totals[attribute] += 1
                by_count_hits[n_obj][attribute] += bool(value)
                by_count_totals[n_obj][attribute] += 1
    acc = {a: hits[a] / totals[a] for a in totals}
    per_count = {k: {a: by_count_hits[k][a] / t for a, t in v.items()} | {"n": v["colour"]}
                 for k, v in sorted(by_count_totals.items())}
    return acc, {a: totals[a] for a in totals}, per_count


def throughput(pipe, steps, guidance, batch, repeats):
    adapter = TextToImageAdapter(pipe, num_inference_steps=steps, guidance_scale=guidance, batch_size=batch)
    captions = scene_captions(batch, seed=99)
    adapter.generate(captions[:1], [0])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        adapter.generate(captions, list(range(batch)))
    return batch * repeats / (time.perf_counter() - start)


def _training(model: str) -> dict:
    if model in ("shapes", "flux"):
        return shapes.training_record("text2image" if model == "shapes" else "flux")
    record = Path(model) / "training.json"
    return json.loads(record.read_text()) if record.is_file() else {}


PARTS = ("accuracy", "speed")


def accuracy_part(args, pipe) -> tuple[dict, str]:
    captions = scene_captions(args.n, seed=args.draw, split=args.split)
    start = time.perf_counter()
    adapter = TextToImageAdapter(pipe, num_inference_steps=args.steps, guidance_scale=args.guidance, batch_size=64)
    acc, totals, per_count = accuracy(adapter, captions)
    args.steps, args.guidance = adapter.num_inference_steps, adapter.guidance_scale
    payload = dict(n_captions=args.n, split=args.split, draw=args.draw, steps=args.steps, guidance=args.guidance,
                   scheduler=type(pipe.scheduler).__name__, accuracy=acc, judged=totals,
                   accuracy_by_object_count=per_count, wall_s=time.perf_counter() - start,
                   training=_training(args.model), machine=machine())
    payload["training"].pop("loss_curve", None)
    draw = "" if args.draw == REPORTED_DRAW else f", draw {args.draw}"
    which = "text2image" if args.model == "shapes" else args.model
    lines = [f"# Shapes {which} fidelity ({args.n} {args.split} captions{draw}, {args.steps} "
             f"{type(pipe.scheduler).__name__.removesuffix('Scheduler')} steps, guidance {args.guidance})", "",
             "| attribute | accuracy | judged |", "|---|---|---|"]
    lines += [f"| {a} | {acc[a]:.1%} | {totals[a]} |" for a in acc]
    lines += ["", "| objects | n | colour | count | shape | position | all |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v.get('colour', 0):.1%} | {v.get('count', 0):.1%} | {v.get('shape', 0):.1%} | "
              f"{v.get('position', float('nan')):.1%} | {v.get('all_ok', 0):.1%} |" for k, v in per_count.items()]
    steps = payload["training"].get("unet_steps", payload["training"].get("steps", "unknown"))
    lines += ["", f"Denoiser training steps: {steps}.", ""]
    return payload, "\n".join(lines)


def speed_part(args, pipe) -> tuple[dict, str]:
    # three interleaved rounds, median per batch size: a shared machine's speed drifts
    rounds = {batch: [] for batch in (1, 8, 64)}
    for _ in range(3):
        for batch, repeats in ((1, 8), (8, 3), (64, 1)):
            rounds[batch].append(throughput(pipe, args.steps, args.guidance, batch, repeats))
    speed = {batch: float(np.median(values)) for batch, values in rounds.items()}
    adapter = TextToImageAdapter(pipe, num_inference_steps=args.steps, guidance_scale=args.guidance, batch_size=64)
    reset_peak_rss()
    base = peak_rss_mib()
    adapter.generate(scene_captions(64, seed=args.draw, split=args.split), list(range(64)))
    peak = peak_rss_mib()
    payload = dict(steps=args.steps, guidance=args.guidance, images_per_second=speed, images_per_second_rounds=rounds,
                   batch64_speedup_per_image=speed[64] / speed[1], peak_rss_mib_batch64=peak, rss_before_mib=base,
                   machine=machine())
    lines = [f"# Shapes text2image throughput ({args.steps} steps, guidance {args.guidance})", "",
             "| batch | images/s (median of 3 interleaved rounds) | rounds |", "|---|---|---|"]
    lines += [f"| {b} | {v:.2f} | " + ", ".join(f"{r:.2f}" for r in rounds[b]) + " |" for b, v in speed.items()]
    lines += ["", f"Batch 64 per-image throughput = {speed[64] / speed[1]:.2f}x batch 1; "
              f"peak RSS while generating 64: {peak:.0f} MiB.", ""]
    return payload, "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, among {PARTS}")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="[the model's own]")
    parser.add_argument("--guidance", type=float, default=None, help="[the model's own]")
    parser.add_argument("--model", default="shapes", help="'shapes', 'flux' or an exported pipeline directory")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    parser.add_argument("--split", default="heldout", choices=["heldout", "train"],
                        help="held-out captions (the target) or training-split captions (fit, for contrast)")
    parser.add_argument("--draw", type=int, default=REPORTED_DRAW,
                        help="seed of the caption draw; choose sampler settings on another draw than the reported one")
    parser.add_argument("--scheduler", default="pipeline", choices=SCHEDULERS,
                        help="pipeline: its own scheduler; the others are built from its config (same timestep rule)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    torch.set_flush_denormal(True)
    pipe = load_pipeline(args.model)
    if args.scheduler != "pipeline":
        import diffusers

        classes = dict(ddim="DDIMScheduler", dpm="DPMSolverMultistepScheduler", unipc="UniPCMultistepScheduler",
                       euler="EulerDiscreteScheduler")
        pipe.scheduler = getattr(diffusers, classes[args.scheduler]).from_config(pipe.scheduler.config)
    current = (args.name is None and args.model in ("shapes", "flux") and args.n == 256 and args.draw == REPORTED_DRAW
               and args.split == "heldout" and args.scheduler == "pipeline" and args.steps is None
               and args.guidance is None)
    default_name = "shapes_fidelity" if args.model == "shapes" else "shapes_fidelity_flux"
    for part in parts:
        payload, table = (accuracy_part if part == "accuracy" else speed_part)(args, pipe)
        write(f"{args.name or default_name}_{part}", payload, table, current=current)


if __name__ == "__main__":
    main()
