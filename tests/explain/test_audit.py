"""Dataset audits: prompt files, the summary's arithmetic, and resuming a killed run without
regenerating anything finished (in process and on Ray)."""

import json

import numpy as np
import pytest

from diffexplain.cache import GenerationCache
from diffexplain.embed import PixelEmbedder
from diffexplain.explain.api import PromptExplainer
from diffexplain.explain.audit import audit, plan, read_prompts, summarise
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from diffexplain.types import Explanation
from tests.helpers import tiny_text2image

PROMPTS = [("x", "a big red circle"), ("x", "a small blue square"), ("y", "a red circle"), ("y", "a blue square")]


def test_prompt_files_take_groups_and_skip_comments(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# a comment\n\na red circle\ndoctor\ta big red circle\n  \nnurse\ta blue square\n")
    assert read_prompts(path) == [(None, "a red circle"), ("doctor", "a big red circle"), ("nurse", "a blue square")]
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no prompt"):
        read_prompts(path)
    with pytest.raises(ValueError, match="no such file"):
        read_prompts(tmp_path / "missing.txt")


def _explanation(words, values):
    return Explanation(method="kernelshap", features=tuple(words), values=np.array(values, np.float32),
                       base_value=0.0, full_value=float(sum(values)))


def test_summary_means_shares_over_prompts_and_compares_two_groups():
    explanations = [_explanation(["a", "red", "circle"], [0.0, 3.0, 1.0]),   # shares 0, .75, .25
                    _explanation(["a", "blue", "circle"], [1.0, 2.0, -1.0]),  # shares .25, .5, -.25
                    _explanation(["the", "red", "square"], [0.0, 1.0, 1.0])]  # shares 0, .5, .5
    summary = summarise(explanations, ["g", "h", "g"])
    stats = {w.word: w for w in summary.words}
    assert stats["red"].mean == pytest.approx(0.625) and stats["red"].count == 2
    assert stats["red"].std == pytest.approx(0.125)
    assert stats["circle"].mean == pytest.approx(0.0)
    assert [w.word for w in summary.words][:2] == ["red", "blue"]  # largest mean share first
    assert summary.groups == ("g", "h")
    assert dict(summary.differences) == pytest.approx({"circle": 0.5, "a": -0.25})
    assert summary.differences[0][0] == "circle"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    _, _, path = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return str(path), TextToImageAdapter(load_pipeline(str(path)), num_inference_steps=2, guidance_scale=2.0,
                                         batch_size=4)


class Counting(TextToImageAdapter):
    """Counts the images it generates."""

    made = 0

    def generate(self, prompts, seeds):
        Counting.made += len(seeds)
        return super().generate(prompts, seeds)


def _explainer(adapter, out, executor=None):
    return PromptExplainer(adapter, embedder=PixelEmbedder(size=8), seeds=1, cache=GenerationCache(out / "c.sqlite"),
                           executor=executor)


def test_a_killed_audit_resumes_without_regenerating_anything_finished(tiny, tmp_path):
    path, _ = tiny
    adapter = Counting(load_pipeline(path), num_inference_steps=2, guidance_scale=2.0, batch_size=4)
    out = tmp_path / "audit"
    explainer = _explainer(adapter, out)
    expected = plan(explainer, PROMPTS, out)
    def die_in_the_second_prompt(done, total):  # after its first batch is in the cache
        if (out / "prompts" / "0000" / "explanation.json").is_file():
            raise KeyboardInterrupt

    Counting.made = 0
    explainer.progress = die_in_the_second_prompt
    with pytest.raises(KeyboardInterrupt):
        audit(explainer, PROMPTS, out)
    first = Counting.made
    finished = (out / "prompts" / "0000" / "explanation.json").read_text()
    assert not (out / "prompts" / "0001").exists()
    again = _explainer(adapter, out)
    left = plan(again, PROMPTS, out)
    assert left[0] == 0 and sum(left) == sum(expected) - first  # nothing finished is planned again
    Counting.made = 0
    summary = audit(again, PROMPTS, out)
    assert Counting.made == sum(left)
    assert (out / "prompts" / "0000" / "explanation.json").read_text() == finished
    assert summary.n_prompts == 4 and json.loads((out / "summary.json").read_text())["n_prompts"] == 4


def test_an_audit_on_ray_equals_the_local_one_and_survives_a_kill(tiny, tmp_path):
    ray = pytest.importorskip("ray")
    from diffexplain.executors import RayExecutor, spec_of

    path, adapter = tiny
    local = audit(_explainer(adapter, tmp_path / "local"), PROMPTS, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        executor = RayExecutor(spec_of(adapter, path), workers=2, num_cpus=1)
        out = tmp_path / "ray"
        explainer = _explainer(adapter, out, executor)

        def kill_the_driver_in_the_second_prompt(done, total):
            if (out / "prompts" / "0000" / "explanation.json").is_file():
                raise KeyboardInterrupt

        explainer.progress = kill_the_driver_in_the_second_prompt
        with pytest.raises(KeyboardInterrupt):
            audit(explainer, PROMPTS, out)
        cache = GenerationCache(out / "c.sqlite")
        before, left = len(cache), plan(_explainer(adapter, out), PROMPTS, out)
        explainer = _explainer(adapter, out, executor)  # the re-run, on the same actors; one of them dies
        explainer.progress = lambda done, total: (executor.actors and ray.kill(executor.actors[0])
                                                  if executor.restarts == 0 else None)
        remote = audit(explainer, PROMPTS, out)
        assert executor.restarts == 1
        assert len(cache) - before == sum(left) and left[0] == 0  # nothing finished generated again
        executor.close()
    finally:
        ray.shutdown()
    assert remote == local
    assert len(GenerationCache(out / "c.sqlite")) == len(GenerationCache(tmp_path / "local" / "c.sqlite"))


def test_an_embeddings_only_cache_gives_the_same_audit_and_keeps_no_pixels(tiny, tmp_path):
    _, adapter = tiny
    full = audit(_explainer(adapter, tmp_path / "full"), PROMPTS, tmp_path / "full")
    lean_cache = GenerationCache(tmp_path / "lean" / "c.sqlite", keep_images=False)
    explainer = PromptExplainer(adapter, embedder=PixelEmbedder(size=8), seeds=1, cache=lean_cache)
    lean = audit(explainer, PROMPTS, tmp_path / "lean")
    assert lean == full
    assert len(lean_cache) == len(GenerationCache(tmp_path / "full" / "c.sqlite"))
    with pytest.raises(ValueError, match="embeddings-only cache"):
        lean_cache.get_images(lean_cache.keys()[:1])
    again = PromptExplainer(adapter, embedder=PixelEmbedder(size=8), seeds=1, cache=lean_cache)
    assert sum(plan(again, PROMPTS, tmp_path / "other")) == 0  # nothing to regenerate for the same embedder
