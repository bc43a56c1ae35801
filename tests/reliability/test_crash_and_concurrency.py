"""Nothing lost on a crash, nothing done twice: ``explain`` killed with SIGKILL at random points
resumes to the uninterrupted values without regenerating a stored image, and two runs on one cache
at once give the solo values with every image generated once."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import tiny_text2image

PROMPT = "a big red circle on the left"  # 7 words: 128 coalitions, 8 batches of 16
CLI = str(Path(sys.executable).with_name("diffexplain"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(tiny_text2image(tmp_path_factory.mktemp("model"))[2])


def command(model, out, cache=None):
    args = [CLI, "explain", PROMPT, "--model", model, "--method", "shapley", "--seeds", "1", "--steps", "2",
            "--embedder", "pixel", "--threads", "1", "--out", str(out)]
    return args + (["--cache", str(cache)] if cache else [])


def env():
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def finished(out: Path, result) -> dict:
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads((out / "explanation.json").read_text())


def rows(cache: Path) -> int:
    if not cache.exists():
        return 0
    return sqlite3.connect(cache).execute("SELECT COUNT(*) FROM images").fetchone()[0]


def test_sigkill_at_ten_random_points_then_a_rerun_gives_the_uninterrupted_values(tmp_path, model):
    solo_out = tmp_path / "solo"
    start = time.perf_counter()
    solo = finished(solo_out, subprocess.run(command(model, solo_out), env=env(), capture_output=True, text=True))
    duration = time.perf_counter() - start
    out = tmp_path / "killed"
    cache = out / "cache.sqlite"
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.3 * duration, 1.0 * duration, size=10):
        process = subprocess.Popen(command(model, out), env=env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    stored = rows(cache)
    result = subprocess.run(command(model, out), env=env(), capture_output=True, text=True)
    final = finished(out, result)
    np.testing.assert_array_equal(final["values"], solo["values"])
    assert final["n_cached"] == stored  # every image stored before the kills is used, none generated again
    assert rows(cache) == solo["n_generations"] == 128


def test_two_runs_on_one_cache_at_once_give_the_solo_values_and_generate_each_image_once(tmp_path, model):
    solo_out = tmp_path / "solo"
    solo = finished(solo_out, subprocess.run(command(model, solo_out), env=env(), capture_output=True, text=True))
    cache = tmp_path / "shared.sqlite"
    outs = [tmp_path / "a", tmp_path / "b"]
    processes = [subprocess.Popen(command(model, out, cache), env=env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for out in outs]
    results = [p.communicate(timeout=600) for p in processes]
    explanations = []
    for out, process, (stdout, stderr) in zip(outs, processes, results):
        assert process.returncode == 0, stderr + stdout
        explanations.append(json.loads((out / "explanation.json").read_text()))
    for explanation in explanations:
        np.testing.assert_array_equal(explanation["values"], solo["values"])
    generated = sum(e["n_generations"] - e["n_cached"] for e in explanations)
    assert generated == rows(cache) == 128  # together, each image once
