"""Generations on Ray actors give the in-process values bit for bit, survive a killed actor, and
are written to the cache once each."""

import numpy as np
import pytest

from diffexplain.cache import GenerationCache
from diffexplain.embed import PixelEmbedder
from diffexplain.executors import InProcessExecutor, RayExecutor, Work, spec_of
from diffexplain.explain.api import explain_prompt
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from tests.helpers import tiny_text2image

PROMPT = "a big red circle"


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    _, _, path = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    adapter = TextToImageAdapter(load_pipeline(str(path)), num_inference_steps=2, guidance_scale=2.0, batch_size=2)
    return str(path), adapter


def _explain(adapter, cache, executor=None, progress=None):
    return explain_prompt(adapter, PROMPT, method="shapley", seeds=[0, 1], embedder=PixelEmbedder(size=8),
                          cache=cache, executor=executor, progress=progress)


def test_ray_gives_the_in_process_values_bit_for_bit(ray_session, tiny):
    path, adapter = tiny
    local_cache, ray_cache = GenerationCache(), GenerationCache()
    local = _explain(adapter, local_cache)
    executor = RayExecutor(spec_of(adapter, path), workers=2, num_cpus=1)
    try:
        remote = _explain(adapter, ray_cache, executor)
    finally:
        executor.close()
    np.testing.assert_array_equal(remote.values, local.values)
    assert len(ray_cache) == len(local_cache) == 32
    keys = ray_cache.keys()
    for key in keys:
        np.testing.assert_array_equal(ray_cache.get_images([key])[key], local_cache.get_images([key])[key])


def test_a_killed_actor_has_its_batches_rerun_and_nothing_is_counted_twice(ray_session, tiny):
    path, adapter = tiny
    reference = _explain(adapter, GenerationCache())
    cache = GenerationCache()
    executor = RayExecutor(spec_of(adapter, path), workers=2, num_cpus=1, in_flight=3)
    killed = []

    def kill_once(done, total):
        if not killed:
            killed.append(executor.actors[0])
            ray_session.kill(executor.actors[0])

    try:
        explanation = _explain(adapter, cache, executor, progress=kill_once)
    finally:
        executor.close()
    assert killed and executor.restarts == 1 and executor.reruns >= 1
    np.testing.assert_array_equal(explanation.values, reference.values)
    assert len(cache) == 32 and explanation.n_generations == 32


def test_a_worker_with_other_settings_is_refused(ray_session, tiny):
    path, adapter = tiny
    other = spec_of(adapter, path)
    other.options["num_inference_steps"] = 3
    executor = RayExecutor(other, workers=1, num_cpus=1)
    try:
        with pytest.raises(RuntimeError, match="different model or settings"):
            _explain(adapter, GenerationCache(), executor)
    finally:
        executor.close()


def test_black_images_are_reported_not_used():
    class Black:
        def generate(self, texts, seeds):
            return np.zeros((len(seeds), 4, 4, 3), np.uint8)

    with pytest.raises(RuntimeError, match="all-black image .* seeds \\[7\\]"):
        list(InProcessExecutor().run(Black(), [Work.full("a red circle", (7,))]))


def test_more_workers_than_a_local_instance_has_cpus_is_refused(tiny):
    ray = pytest.importorskip("ray")
    path, adapter = tiny
    if ray.is_initialized():
        ray.shutdown()
    import os

    n = (os.cpu_count() or 1) + 1  # a local instance has one CPU per core
    with pytest.raises(ValueError, match=f"{n} workers x 1 CPU each exceed the local Ray instance"):
        RayExecutor(spec_of(adapter, path), workers=n, num_cpus=1)
    assert not ray.is_initialized()
