"""Every explainer end to end on a tiny random StableDiffusionPipeline saved and reloaded here."""

import numpy as np
import pytest

from diffexplain.cache import GenerationCache
from diffexplain.embed import PixelEmbedder
from diffexplain.explain.api import METHODS, explain_prompt
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.types import Explanation
from tests.helpers import tiny_text2image

PROMPT = "a big red circle"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    pipe, _, _ = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return TextToImageAdapter(pipe, num_inference_steps=2, guidance_scale=2.0, batch_size=8)


class SpyAdapter(TextToImageAdapter):
    """Records the exact prompts sent to the pipeline."""

    sent: list

    def generate(self, prompts, seeds):
        self.sent.extend(prompts)
        return super().generate(prompts, seeds)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_explainer_runs_end_to_end_and_round_trips(adapter, method, tmp_path):
    budget = None if method == "shapley" else 12
    explanation = explain_prompt(adapter, PROMPT, method=method, seeds=2, budget=budget)
    assert explanation.features == ("a", "big", "red", "circle")
    assert explanation.values.dtype == np.float32 and np.isfinite(explanation.values).all()
    assert explanation.stderr is not None and explanation.stderr.shape == (4,)
    assert explanation.n_generations > 0 and explanation.n_cached == 0
    assert explanation.settings["similarity"] == "neg_l2"  # the default for every method
    if method in ("shapley", "permutation", "kernelshap"):
        assert explanation.values.sum() == pytest.approx(explanation.full_value - explanation.base_value, abs=1e-5)
        # -L2 to the unperturbed image: 0 for the full prompt, below 0 for the empty one
        assert explanation.full_value == pytest.approx(0.0, abs=1e-6) and explanation.base_value < 0
    if method == "smile":
        assert explanation.pvalues is not None
        assert len(explanation.info["w1_pvalue"]) == explanation.info["n_coalitions"]
    explanation.save(tmp_path)
    loaded = Explanation.load(tmp_path)
    np.testing.assert_array_equal(loaded.values, explanation.values)
    assert loaded.features == explanation.features and loaded.settings == explanation.settings


def test_a_second_method_reuses_the_cache_and_a_rerun_generates_nothing(adapter):
    cache = GenerationCache()
    first = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, cache=cache)
    assert first.n_generations == 16 and first.n_cached == 0
    second = explain_prompt(adapter, PROMPT, method="kernelshap", seeds=1, budget=10, cache=cache)
    assert second.n_cached == second.n_generations == 10
    again = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, cache=cache)
    assert again.n_cached == again.n_generations
    np.testing.assert_array_equal(again.values, first.values)


def test_the_text_sent_always_matches_the_mask(tmp_path):
    pipe, _, _ = tiny_text2image(tmp_path)
    spy = SpyAdapter(pipe, num_inference_steps=2, guidance_scale=2.0, batch_size=8)
    spy.sent = []
    explanation = explain_prompt(spy, PROMPT, method="lime", seeds=1, budget=10)
    words = PROMPT.split()
    expected = [" ".join(w for w, keep in zip(words, mask) if keep) for mask in explanation.coalitions]
    assert explanation.coalition_texts == tuple(expected)
    assert sorted(spy.sent) == sorted(expected)


@pytest.mark.parametrize("method", list(METHODS))
def test_an_explanation_keeps_its_coalitions_and_reaches_their_images(adapter, tmp_path, method):
    """One typed field for every method; images come back from the cache by key, not from the model,
    and a loaded explanation behaves exactly as the fresh one."""
    from diffexplain import Explanation
    from diffexplain.explain.api import PromptExplainer

    explainer = PromptExplainer(adapter, embedder="pixel", seeds=2)
    explanation = explainer.explain(PROMPT, method=method, budget=None if method == "shapley" else 10)
    coalitions = explanation.coalitions
    assert coalitions.dtype == bool and coalitions.shape[1] == len(PROMPT.split())
    assert len(coalitions) == explanation.info["n_coalitions"] or method in ("lime", "smile")
    generated = len(explainer.cache)
    images = explanation.images(explainer.cache, [0, len(coalitions) - 1])
    assert images.shape == (2, 2, adapter.height, adapter.width, 3) and images.dtype == np.uint8
    assert len(explainer.cache) == generated  # read back, nothing generated
    regenerated = adapter.generate([explanation.coalition_texts[0]], [0])[0]
    np.testing.assert_array_equal(images[0, 0], regenerated)
    explanation.save(tmp_path / method)
    loaded = Explanation.load(tmp_path / method)
    np.testing.assert_array_equal(loaded.coalitions, coalitions)
    assert loaded == explanation and loaded.coalition_keys == explanation.coalition_keys
    np.testing.assert_array_equal(loaded.images(explainer.cache), explanation.images(explainer.cache))
    with pytest.raises(ValueError, match="not in this cache"):
        loaded.images(GenerationCache())


def test_every_method_takes_a_budget_and_exact_shapley_refuses_one_below_all_coalitions(adapter):
    d = len(PROMPT.split())
    full = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, embedder="pixel", budget=2 ** d)
    assert full.info["n_coalitions"] == 2 ** d
    with pytest.raises(ValueError, match=f"budget=10 is below the 2\\^{d}"):
        explain_prompt(adapter, PROMPT, method="shapley", seeds=1, embedder="pixel", budget=10)


def test_empty_embedding_perturbation_keeps_positions(adapter):
    explanation = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, perturbation="empty_embedding")
    assert explanation.values.sum() == pytest.approx(explanation.full_value - explanation.base_value, abs=1e-5)
    drop = explain_prompt(adapter, PROMPT, method="shapley", seeds=1)
    assert not np.allclose(drop.values, explanation.values)


@pytest.mark.parametrize("kwargs,match", [
    (dict(prompt=""), "prompt must be a non-empty string"),
    (dict(prompt="   "), "prompt must be a non-empty string"),
    (dict(prompt="red " * 40), r"longer than every text encoder reads .*: 10 word\(s\) from word 31"),
    (dict(seeds=0), "seeds must be >= 1"),
    (dict(method="magic"), "method must be one of"),
    (dict(embedder="vgg"), "embedder must be one of"),
    (dict(similarity="dot"), "similarity must be one of"),
    (dict(method="kernelshap", budget=3), "budget=3 is too small for kernelshap"),
    (dict(embedder="clip"), "needs a local model path"),
    (dict(embedder="pixel", embedder_size=128), "embedder_size applies to the 'efficientnet' embedder"),
    (dict(embedder_size=8), "image_size must be an integer >= 32, got 8"),
    (dict(embedder=PixelEmbedder(4), embedder_size=128), "embedder_size applies to the 'efficientnet' embedder"),
])
def test_bad_input_is_a_clear_error(adapter, kwargs, match):
    arguments = dict(prompt=PROMPT, method="shapley")
    arguments.update(kwargs)
    prompt = arguments.pop("prompt")
    with pytest.raises(ValueError, match=match):
        explain_prompt(adapter, prompt, **arguments)


def test_exact_shapley_word_cap_suggests_sampled_methods(adapter):
    with pytest.raises(ValueError, match="use method 'permutation' or 'kernelshap'"):
        explain_prompt(adapter, " ".join(["red"] * 13), method="shapley")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_explainer_runs_on_the_shipped_shapes_pipeline(shapes_pipe, method):
    from diffexplain_shapes import check_vocabulary

    adapter = TextToImageAdapter(shapes_pipe, num_inference_steps=4, guidance_scale=4.0, batch_size=32,
                                 vocabulary_check=check_vocabulary)
    budget = None if method == "shapley" else 12
    explanation = explain_prompt(adapter, "a big yellow circle", method=method, seeds=1, budget=budget)
    assert explanation.features == ("a", "big", "yellow", "circle")
    assert np.isfinite(explanation.values).all()
    # the default embedder, at twice the 64-px image side
    assert explanation.settings["embedder"] == "efficientnet-lite0-128"
    with pytest.raises(ValueError, match="'hexagon'"):
        explain_prompt(adapter, "a big yellow hexagon", method=method, seeds=1, budget=budget)


def test_smile_default_budget_and_distance_pvalues(adapter):
    # 7 words: the default of 128 coalitions is capped at all 127 non-empty ones (64 would stop at 64)
    explanation = explain_prompt(adapter, "a big red circle on the left", method="smile", seeds=1)
    assert explanation.settings["budget"] == 128 and explanation.info["n_coalitions"] == 127
    distances, pvalues = np.array(explanation.info["w1_distance"]), np.array(explanation.info["w1_pvalue"])
    # the full prompt comes first: distance 0 to itself, so every resample is at least as far (p = 1)
    assert distances[0] == 0.0 and pvalues[0] == 1.0
    assert ((pvalues > 0) & (pvalues <= 1)).all() and (distances[1:] > 0).any()
