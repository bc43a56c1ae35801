"""Wall time of a CLI command idle and beside a competing process, by thread setting.

    python -m benchmarks.threads [--parts generate,explain] [--repeats 3]

Each run is a fresh ``diffexplain`` process (model load included), so what a user waits for is
measured. Settings: the OpenMP wait policy as torch ships it (``OMP_WAIT_POLICY`` empty: threads
spin between parallel regions), diffexplain's default (passive waiting, set by the CLI), and
``--threads 1``. The competing loads: one busy Python process (one core of the two), and another
torch process multiplying matrices with its default threads (what a second job is). Median of
``--repeats`` runs each; the settings alternate within a round so that drifts hit all alike.
Other jobs on the machine distort it: stop them first (a paused background job is fine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import machine, write

CLI = str(Path(sys.executable).with_name("diffexplain"))
COMMANDS = {
    "generate": ["generate", "a big red circle on the left", "--seed", "0"],
    "explain": ["explain", "a big red circle", "--method", "kernelshap", "--seeds", "1", "--embedder", "pixel"],
}
LOADS = {
    "idle": None,
    "one busy process": "while True: pass",
    "a torch process": "import torch\na = torch.randn(256, 256)\nwhile True: a = (a @ a).tanh()",
}
SETTINGS = {
    "spinning (OMP_WAIT_POLICY unset, torch's default)": (dict(OMP_WAIT_POLICY=""), []),
    "default (passive waiting)": ({}, []),
    "--threads 1": ({}, ["--threads", "1"]),
}


def _run(command: list[str], env_extra: dict, flags: list[str], out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(env_extra, HF_HUB_OFFLINE="1")
    target = ["--out", str(out / ("image.png" if command[0] == "generate" else "explain"))]
    start = time.perf_counter()
    subprocess.run([CLI, *command, *target, *flags], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="generate,explain")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(COMMANDS):
        parser.error(f"--parts must name some of {tuple(COMMANDS)}, got {args.parts!r}")
    rows, results = [], {}
    for part in parts:
        for load, code in LOADS.items():
            busy = subprocess.Popen([sys.executable, "-c", code]) if code else None
            time.sleep(2 if code else 0)
            try:
                times: dict[str, list[float]] = {name: [] for name in SETTINGS}
                for _ in range(args.repeats):
                    for name, (env_extra, flags) in SETTINGS.items():
                        with tempfile.TemporaryDirectory() as folder:  # a fresh cache: every image generated
                            times[name].append(_run(COMMANDS[part], env_extra, flags, Path(folder)))
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            for name, values in times.items():
                median = statistics.median(values)
                results.setdefault(part, {}).setdefault(load, {})[name] = dict(median_s=round(median, 2),
                                                                               runs_s=[round(v, 2) for v in values])
                rows.append(f"| {part} | {load} | {name} | {median:.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    table = ("# CLI wall time by thread setting, idle and beside a competing process (2 cores)\n\n"
             "| command | load | setting | median s | runs s |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    write("threads", dict(results=results, machine=machine(), repeats=args.repeats), table, current=True)


if __name__ == "__main__":
    main()
