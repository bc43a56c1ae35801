"""Generations on Ray: a dataset audit, worker throughput and the driver's own overhead.

Parts:
- ``audit``: ``diffexplain audit`` of 200 distinct held-out shapes captions (4-8 words) with the
  local Ray executor (2 workers), KernelSHAP at its default budget, 1 image seed; scores the
  summary against the world's ground truth (content words vs filler words) and writes the audit's
  report page next to the result.
- ``throughput``: images per second of 2 Ray workers vs 1 on the shipped shapes model (one torch
  thread per worker), same batches, measured in one run.
- ``overhead``: workers whose "generation" is a fixed sleep (a stand-in for a GPU), at 1, 4, 16
  and 64 workers: the driver's scheduling and cache writes are all that can slow the run down.
  Scaling efficiency = achieved / ideal generations per second.

    python -m benchmarks.distributed [--parts audit,throughput,overhead]
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import AD_HOC, machine, parts_and_name, write

PARTS = ("audit", "throughput", "overhead")
WORKER_COUNTS = (1, 4, 16, 64)


# -- overhead: sleeping workers ---------------------------------------------------------------------
class SleepAdapter:
    """Stands in for a pipeline: each batch takes ``seconds`` and returns tiny grey-ish images."""

    def __init__(self, seconds: float, side: int = 8):
        self.seconds, self.side, self.batch_size = seconds, side, 4
        self.fingerprint = "sleep"

    def settings(self) -> dict:
        return dict(sleep=self.seconds, side=self.side)

    def generate(self, texts, seeds):
        time.sleep(self.seconds)
        images = np.full((len(seeds), self.side, self.side, 3), 100, np.uint8)
        images[:, 0, 0, 0] = np.asarray(seeds) % 256  # distinct, never all-black
        return images


@dataclasses.dataclass(frozen=True)
class SleepSpec:
    seconds: float
    threads: int | None = None
    model: str = "sleep"

    def build(self):
        return SleepAdapter(self.seconds)


def _overhead_run(workers: int, seconds: float, batches: int) -> dict:
    """Drive ``batches`` sleeping batches of 4 over ``workers`` actors, writing every image to a
    cache as the explainer's driver does; returns achieved and ideal generations per second."""
    import ray

    from diffexplain.cache import GenerationCache, generation_key
    from diffexplain.executors import RayExecutor, Work

    adapter = SleepAdapter(seconds)
    executor = RayExecutor(SleepSpec(seconds), workers=workers, num_cpus=0, in_flight=2)
    try:
        warm = [Work.full("warm", (i,)) for i in range(workers * 2)]
        list(executor.run(adapter, warm))  # actors started and checked before the clock runs
        with tempfile.TemporaryDirectory() as folder:
            cache = GenerationCache(Path(folder) / "cache.sqlite")
            works = [Work.full(f"prompt {b}", tuple(range(4 * b, 4 * b + 4))) for b in range(batches)]
            start = time.perf_counter()
            for index, images in executor.run(adapter, works):
                work = works[index]
                settings = adapter.settings()
                cache.put_images((generation_key("sleep", text, seed, settings), "sleep", text, seed, settings, image)
                                 for text, seed, image in zip(work.texts, work.seeds, images))
            wall = time.perf_counter() - start
            assert len(cache) == 4 * batches
    finally:
        executor.close()
        ray.shutdown()
    achieved = 4 * batches / wall
    ideal = workers * 4 / seconds
    return dict(workers=workers, seconds_per_batch=seconds, batches=batches, wall_s=wall, achieved=achieved,
                ideal=ideal, efficiency=achieved / ideal)


def overhead(seconds: float = 0.4, rounds: int = 6) -> dict:
    rows = []
    for workers in WORKER_COUNTS:
        code = ("import json; from benchmarks.distributed import _overhead_run; "
                f"print(json.dumps(_overhead_run({workers}, {seconds}, {workers * rounds})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        rows.append(__import__("json").loads(out.strip().splitlines()[-1]))
    return dict(rows=rows, machine=machine())


def overhead_table(result: dict) -> str:
    lines = ["# Ray executor: the driver's overhead", "",
             "Workers whose generation is a fixed sleep (a batch of 4 images every "
             f"{result['rows'][0]['seconds_per_batch']} s, a stand-in for a GPU), the driver writing every image to "
             "a SQLite cache as an explanation's driver does. Each worker count in a fresh process and Ray instance, "
             "after a warm-up round.", "",
             "| workers | batches | wall (s) | generations / s | ideal | scaling efficiency |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['workers']} | {row['batches']} | {row['wall_s']:.2f} | {row['achieved']:.0f} | "
                     f"{row['ideal']:.0f} | {row['efficiency']:.3f} |")
    return "\n".join(lines) + "\n"


# -- throughput: 2 workers vs 1 on the shapes model ------------------------------------------------
def _throughput_run(workers: int, images: int) -> dict:
    import ray
    import torch

    from benchmarks.word_attribution import captions
    from diffexplain.executors import RayExecutor, Work, spec_of
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    torch.set_num_threads(1)
    adapter = TextToImageAdapter(load_pipeline("shapes"), batch_size=8)
    spec = dataclasses.replace(spec_of(adapter, "shapes"), threads=1)
    texts = [scene.caption for scene in captions(images, 4, 8, seed=31)]
    works = [Work.full(texts[i], tuple(range(i, i + 8))) for i in range(0, images, 8)]  # 8 seeds a caption
    executor = RayExecutor(spec, workers=workers, num_cpus=1)
    try:
        list(executor.run(adapter, works[:workers]))  # warm-up: pipelines loaded, first batch compiled
        start = time.perf_counter()
        done = sum(len(images) for _, images in executor.run(adapter, works))
        wall = time.perf_counter() - start
    finally:
        executor.close()
        ray.shutdown()
    return dict(workers=workers, images=done, wall_s=wall, images_per_s=done / wall)


def throughput(images: int = 96) -> dict:
    import json

    rows = []
    for workers in (1, 2):
        code = ("import json; from benchmarks.distributed import _throughput_run; "
                f"print(json.dumps(_throughput_run({workers}, {images})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return dict(rows=rows, ratio=rows[1]["images_per_s"] / rows[0]["images_per_s"], machine=machine())


def throughput_table(result: dict) -> str:
    lines = ["# Ray executor: 2 workers vs 1 on the shapes model", "",
             "Shipped text2image model, batches of 8 held-out captions, one torch thread per worker, after a warm-up "
             "batch per worker.", "", "| workers | images | wall (s) | images / s |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['workers']} | {row['images']} | {row['wall_s']:.1f} | {row['images_per_s']:.2f} |")
    lines += ["", f"2 workers / 1 worker: **{result['ratio']:.2f}x**"]
    return "\n".join(lines) + "\n"


# -- audit: 200 held-out captions -----------------------------------------------------------------------
def audit_part(prompts: int = 200, out: Path | None = None) -> dict:
    from benchmarks.word_attribution import captions
    from diffexplain.metrics import roc_auc
    from diffexplain_shapes.scene import COLOURS, NAMED_BACKGROUNDS, POSITIONS, SHAPES, SIZES

    out = out or AD_HOC / "distributed_audit"
    out.mkdir(parents=True, exist_ok=True)
    scenes = captions(prompts, 4, 8, seed=2026)
    prompt_file = out / "prompts.txt"
    prompt_file.write_text("".join(scene.caption + "\n" for scene in scenes))
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "diffexplain"), "audit", str(prompt_file), "--method",
                    "kernelshap", "--seeds", "1", "--executor", "ray", "--workers", "2", "--out", str(out)], check=True)
    wall = time.perf_counter() - start
    import json

    summary = json.loads((out / "summary.json").read_text())
    content = set(COLOURS) | set(SHAPES) | set(SIZES) | set(POSITIONS) | set(NAMED_BACKGROUNDS)
    words = [w for w in summary["words"] if w["count"] >= 2]
    labels = np.array([w["word"] in content for w in words], dtype=float)
    means = np.array([w["mean"] for w in words])
    fillers = [w for w in words if w["word"] not in content]
    contents = [w for w in words if w["word"] in content]
    return dict(prompts=prompts, wall_s=wall, n_words=len(words), auc_content_vs_filler=float(roc_auc(means, labels)),
                mean_content=float(np.mean([w["mean"] for w in contents])),
                mean_filler=float(np.mean([w["mean"] for w in fillers])),
                highest_filler=max(fillers, key=lambda w: w["mean"]),
                lowest_content=min(contents, key=lambda w: w["mean"]),
                top=words[:10], bottom=words[-10:], report=str(out / "report.html"), machine=machine())


def audit_table(result: dict) -> str:
    lines = ["# Dataset audit on Ray: 200 held-out shapes captions", "",
             f"`diffexplain audit` of {result['prompts']} distinct held-out captions (4-8 words), KernelSHAP at its "
             f"default budget, 1 image seed, local Ray executor with 2 workers: {result['wall_s'] / 60:.1f} min. "
             f"{result['n_words']} words appear in at least 2 captions.", "",
             f"- content words (colour, shape, size, position, background) vs filler words, ranked by mean share: "
             f"**AUC {result['auc_content_vs_filler']:.3f}**",
             f"- mean share: content {result['mean_content']:+.3f}, filler {result['mean_filler']:+.3f}",
             f"- highest filler: {result['highest_filler']['word']} {result['highest_filler']['mean']:+.3f}; lowest "
             f"content word: {result['lowest_content']['word']} {result['lowest_content']['mean']:+.3f}", "",
             "| most influential | mean share | prompts |", "|---|---|---|"]
    lines += [f"| {w['word']} | {w['mean']:+.3f} | {w['count']} |" for w in result["top"]]
    lines += ["", "| least influential | mean share | prompts |", "|---|---|---|"]
    lines += [f"| {w['word']} | {w['mean']:+.3f} | {w['count']} |" for w in result["bottom"]]
    lines += ["", "The audit's own page (plot of per-word attributions): `distributed_audit.html`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parts, name = parts_and_name(__doc__.splitlines()[0], PARTS, argv)
    current = name is None
    if "audit" in parts:
        result = audit_part()
        folder = write(f"{name or 'distributed'}_audit", result, audit_table(result), current=current)
        (folder / f"{name or 'distributed'}_audit.html").write_bytes(Path(result["report"]).read_bytes())
    if "throughput" in parts:
        result = throughput()
        write(f"{name or 'distributed'}_throughput", result, throughput_table(result), current=current)
    if "overhead" in parts:
        result = overhead()
        write(f"{name or 'distributed'}_overhead", result, overhead_table(result), current=current)


if __name__ == "__main__":
    main()
