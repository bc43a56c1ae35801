"""Helpers shared by the benchmarks: peak-memory probes, result writers and leave-one-word-out images."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
AD_HOC = Path(__file__).resolve().parents[1] / "runs" / "benchmarks"  # git-ignored


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter for this process (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    import torch

    return dict(cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), python=platform.python_version(),
                torch=torch.__version__, platform=platform.platform())


def write(name: str, payload: dict, table: str, *, current: bool) -> Path:
    """Write ``name``.json and ``name``.md: to ``benchmarks/results`` when this is the benchmark's
    current result (its canonical command), else to the ignored ``runs/benchmarks``. The payload
    records the command and the commit it ran on."""
    import subprocess
    import sys

    folder = RESULTS if current else AD_HOC
    folder.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    payload = dict(payload, command="python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:]),
                   commit=commit or "unknown")
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (folder / f"{name}.md").write_text(table)
    print(table)
    print(f"wrote {folder / name}.json and .md")
    return folder


def drop_one_images(adapter, text: str, seeds: list[int], embedder, cache):
    """The full text's images and the images with each word dropped alone: (d + 1, K, H, W, 3) uint8.

    Row 0 is the full text, row 1 + i the text without word i: the texts "drop" coalitions send,
    so an exact Shapley run on the same cache has generated them already.
    """
    import numpy as np

    from diffexplain.explain.prompt_game import PromptGame
    from diffexplain.explain.settings import ExplainSettings

    game = PromptGame(adapter, text, ExplainSettings(seeds=seeds, embedder=embedder), embedder=embedder, cache=cache)
    d = game.n_players
    return game.images(np.vstack([np.ones((1, d), bool), ~np.eye(d, dtype=bool)]))


def parts_and_name(description: str, parts: tuple[str, ...], argv=None) -> tuple[list[str], str | None]:
    """Parse ``--parts`` (among ``parts``) and ``--name`` (an ad-hoc run) for a benchmark without other flags."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--parts", default=",".join(parts), help=f"comma-separated, among {parts}")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    args = parser.parse_args(argv)
    return chosen_parts(parser, args.parts, parts), args.name


def chosen_parts(parser, spec: str, parts: tuple[str, ...]) -> list[str]:
    """The comma-separated ``spec`` of ``--parts`` as a list, or the parser's usage error."""
    chosen = [p for p in spec.split(",") if p]
    if not chosen or not set(chosen) <= set(parts):
        parser.error(f"--parts must name some of {parts}, got {spec!r}")
    return chosen
