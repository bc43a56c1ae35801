import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np

from diffexplain.cache import GenerationCache, generation_key
from tests.helpers import tiny_text2image

CHILD = textwrap.dedent("""
    import os, signal, sys
    from diffusers import StableDiffusionPipeline
    from diffexplain.cache import GenerationCache
    from diffexplain.embed import PixelEmbedder
    from diffexplain.explain.api import explain_prompt
    from diffexplain.models.adapter import TextToImageAdapter

    model, cache_path, prompt, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, guidance_scale=2.0, batch_size=4)
    batches = []

    def progress(done, total):
        batches.append(done)
        if kill_after and len(batches) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    explain_prompt(adapter, prompt, method="shapley", seeds=1, embedder=PixelEmbedder(4),
                   cache=GenerationCache(cache_path), progress=progress)
""")


def _child(model, cache, prompt, kill_after):
    import torch

    # the thread count is part of every image's cache key: the child generates with the parent's
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(sys.path),
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    return subprocess.Popen([sys.executable, "-c", CHILD, model, str(cache), prompt, str(kill_after)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _integrity(path):
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_killed_run_loses_at_most_the_batch_in_flight(tmp_path):
    _, _, model = tiny_text2image(tmp_path)
    cache_path = tmp_path / "cache.sqlite"
    child = _child(str(model), cache_path, "a big red circle", kill_after=2)  # 16 coalitions, batches of 4
    child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL
    assert _integrity(cache_path) == "ok"
    cache = GenerationCache(cache_path)
    # committed before the kill: the full prompt's reference image (its own batch of 1), then one batch of 4
    assert len(cache) == 5

    from diffusers import StableDiffusionPipeline

    from diffexplain.embed import PixelEmbedder
    from diffexplain.explain.api import explain_prompt
    from diffexplain.models.adapter import TextToImageAdapter

    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, guidance_scale=2.0, batch_size=4)
    explanation = explain_prompt(adapter, "a big red circle", method="shapley", seeds=1, embedder=PixelEmbedder(4),
                                 cache=cache)
    assert explanation.n_generations == 16 and explanation.n_cached == 5
    assert len(cache) == 16


def test_concurrent_runs_share_one_cache_without_corruption(tmp_path):
    _, _, model = tiny_text2image(tmp_path)
    cache_path = tmp_path / "cache.sqlite"
    GenerationCache(cache_path)  # create the schema once
    children = [_child(str(model), cache_path, prompt, 0) for prompt in ("a big red circle", "a small blue square")]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err.decode()[-2000:]
    assert _integrity(cache_path) == "ok"
    # 2 x 16 coalitions, of which "" and "a" are the same text in both prompts: stored once
    assert len(GenerationCache(cache_path)) == 30
    assert sorted(GenerationCache(cache_path).conditionings()).count("a") == 1


def test_keys_depend_on_every_input_and_round_trip_images(tmp_path):
    base = generation_key("m", "a red circle", 1, {"steps": 20})
    assert base != generation_key("m2", "a red circle", 1, {"steps": 20})
    assert base != generation_key("m", "a red square", 1, {"steps": 20})
    assert base != generation_key("m", "a red circle", 2, {"steps": 20})
    assert base != generation_key("m", "a red circle", 1, {"steps": 21})
    cache = GenerationCache(tmp_path / "c.sqlite")
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    cache.put_images([(base, "m", "a red circle", 1, {"steps": 20}, image)])
    assert np.array_equal(cache.get_images([base])[base], image)
    vector = np.arange(5, dtype=np.float32)
    cache.put_embeddings({base: vector}, "pixel-4")
    assert np.array_equal(cache.get_embeddings([base], "pixel-4")[base], vector)
    assert cache.get_embeddings([base], "other") == {}


def test_has_reports_stored_keys_only(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    image = np.zeros((4, 4, 3), np.uint8)
    cache.put_images([("k1", "m", "t", 0, {}, image)])
    assert cache.has(["k1", "k2"]) == {"k1"}
    assert cache.has([]) == set()
