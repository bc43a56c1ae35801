"""Multi-fidelity Shapley on games with known values, the fidelity specs, and anytime stopping."""

from __future__ import annotations

import numpy as np
import pytest

from diffexplain.explain.game import FunctionGame
from diffexplain.explain.kernel_shap import KernelShapExplainer
from diffexplain.explain.multifidelity import Fidelity, MultiFidelityShapley, fidelity_from
from diffexplain.explain.shapley import ShapleyExplainer
from diffexplain.metrics.functional import all_masks


def table_game(values: np.ndarray) -> FunctionGame:
    """A game from a full table of values indexed like ``all_masks`` (player 0 = least significant bit)."""
    d = int(np.log2(len(values)))
    return FunctionGame(d, lambda mask: values[int(sum(int(b) << i for i, b in enumerate(mask)))])


def random_table(d: int, seed: int, order: int = 3) -> np.ndarray:
    """v(S) = sum over interactions of size <= order present in S of their random weights."""
    rng = np.random.default_rng(seed)
    masks = all_masks(d)
    values = np.zeros(2 ** d)
    for _ in range(3 * d):
        players = rng.choice(d, size=rng.integers(1, order + 1), replace=False)
        values += rng.normal() * masks[:, players].all(axis=1)
    return values


def exact(values: np.ndarray) -> np.ndarray:
    return ShapleyExplainer().explain(table_game(values)).values


@pytest.mark.parametrize("d", [4, 6])
def test_every_full_coalition_gives_exact_shapley_whatever_the_cheap_game(d):
    full, cheap = random_table(d, 1), random_table(d, 2)
    mf = MultiFidelityShapley(table_game(cheap), cheap_cost=0.2, full_only_share=None)
    assert mf.allocation(d, 2 ** d * 1.2) == (2 ** d, 2 ** d)
    result = mf.explain(table_game(full), budget=2 ** d * 1.2)
    np.testing.assert_allclose(result.values, exact(full), atol=1e-6)
    assert result.info["shrinkage"] == 1.0


def test_a_cheap_game_equal_to_the_full_one_gives_exactly_the_cheap_estimate():
    d = 7
    full = random_table(d, 6)
    for budget in (2 * d, 0.2 * 2 ** d + d + 2, 0.2 * 2 ** d + 4 * d):  # both spending modes
        mf = MultiFidelityShapley(table_game(full), cheap_cost=0.2, full_only_share=None)
        result = mf.explain(table_game(full), budget=budget)
        if result.info["cheap_exact"]:
            np.testing.assert_allclose(result.values, exact(full), atol=1e-9)
        else:
            cheap_only = KernelShapExplainer(0).explain(table_game(full), budget=result.info["n_cheap_coalitions"],
                                                        seed=1).values
            np.testing.assert_allclose(result.values, cheap_only, atol=1e-9)


def test_a_cheap_game_affine_in_the_full_one_gives_exact_values_at_the_smallest_paired_budget():
    d = 7
    full = random_table(d, 3)
    cheap = 0.5 * full + 0.3  # perfectly correlated: the difference game is constant
    result = MultiFidelityShapley(table_game(cheap), cheap_cost=0.2, full_only_share=None).explain(table_game(full),
                                                                              budget=0.2 * 2 ** d + d + 2)
    np.testing.assert_allclose(result.values, exact(full), atol=1e-9)
    assert result.info["alpha"] == pytest.approx(2.0)
    assert result.info["n_coalitions"] <= d + 2 and result.info["n_cheap_coalitions"] == 2 ** d


def test_the_budget_buys_cheap_coalitions_first_and_is_counted_in_full_generation_equivalents():
    d = 6
    full, cheap = random_table(d, 4), random_table(d, 4) + 0.1 * random_table(d, 5)
    mf = MultiFidelityShapley(table_game(cheap), cheap_cost=0.25, full_only_share=None)
    result = mf.explain(table_game(full), budget=0.25 * 2 ** d + 2 * d + 2)
    assert result.values.sum() == pytest.approx(full[-1] - full[0], abs=1e-5)
    assert result.info["cost_full"] == 2 * d + 2
    assert result.info["cost_cheap"] == pytest.approx(0.25 * 2 ** d)
    assert result.info["cost_total"] == pytest.approx(2 * d + 2 + 0.25 * 2 ** d)
    small = mf.explain(table_game(full), budget=2 * d)  # every cheap coalition does not fit: two full ones
    assert small.info["n_coalitions"] == 2 and small.info["n_cheap_coalitions"] == int((2 * d - 2) / 0.25)
    assert small.info["cost_total"] <= 2 * d and small.values.sum() == pytest.approx(full[-1] - full[0], abs=1e-5)
    with pytest.raises(ValueError, match="budget=3 full-generation equivalents is too small"):
        mf.explain(table_game(full), budget=3)


def test_a_correlated_cheap_game_cuts_the_error_at_the_same_cost():
    """The control variate at work: over 10 sampler seeds and 5 games with interactions of every
    order, multi-fidelity KernelSHAP at 2d full-generation equivalents has a quarter of plain
    KernelSHAP's error at 2d, and less than plain KernelSHAP at 4d."""
    d = 8
    plain2, plain4, mf_errors = [], [], []
    for game_seed in range(5):
        full = random_table(d, 10 + game_seed, order=d)
        cheap = full + 0.15 * random_table(d, 50 + game_seed, order=d)  # the cheap model errs by a smaller game
        truth = exact(full)
        scale = np.abs(truth).sum()
        for seed in range(10):
            for budget, errors in ((2 * d, plain2), (4 * d, plain4)):
                plain = KernelShapExplainer(0).explain(table_game(full), budget=budget, seed=seed).values
                errors.append(np.abs(plain - truth).mean() / scale)
            mf = MultiFidelityShapley(table_game(cheap), cheap_cost=0.2, n_bootstrap=0).explain(
                table_game(full), budget=2 * d, seed=seed).values
            mf_errors.append(np.abs(mf - truth).mean() / scale)
    assert np.mean(mf_errors) < 0.25 * np.mean(plain2), (np.mean(mf_errors), np.mean(plain2))
    assert np.mean(mf_errors) < 0.75 * np.mean(plain4), (np.mean(mf_errors), np.mean(plain4))


def test_an_uncorrelated_cheap_game_does_no_harm_beyond_its_cost():
    """With paired coalitions, alpha comes out near 0, nothing is shrunk towards the cheap level, and
    the estimate is, within 10%, KernelSHAP's on the same full coalitions (the cheap level's cost is
    lost, not the full level's information)."""
    d = 7
    plain_errors, mf_errors = [], []
    for game_seed in range(5):
        full = random_table(d, 20 + game_seed)
        cheap = np.random.default_rng(70 + game_seed).normal(size=2 ** d) * full.std()  # noise, unrelated
        truth = exact(full)
        scale = np.abs(truth).sum()
        for seed in range(10):
            mf = MultiFidelityShapley(table_game(cheap), cheap_cost=0.2, full_only_share=None).explain(
                table_game(full), budget=0.2 * 2 ** d + 4 * d, seed=seed)
            plain = KernelShapExplainer(0).explain(table_game(full), budget=mf.info["n_coalitions"], seed=seed)
            plain_errors.append(np.abs(plain.values - truth).mean() / scale)
            mf_errors.append(np.abs(mf.values - truth).mean() / scale)
    assert np.mean(mf_errors) < 1.1 * np.mean(plain_errors), (np.mean(mf_errors), np.mean(plain_errors))


def test_a_budget_near_every_coalition_leaves_the_cheap_level_out():
    d = 6
    full = random_table(d, 8)

    def never(mask):
        raise AssertionError("the cheap level was evaluated")

    mf = MultiFidelityShapley(FunctionGame(d, never), cheap_cost=0.2)  # a quarter of 2^6: 16
    assert mf.allocation(d, 15) != (15, 0) and mf.allocation(d, 16) == (16, 0)
    for budget in (16, 24, 64):
        result = mf.explain(table_game(full), budget=budget, seed=3)
        plain = KernelShapExplainer().explain(table_game(full), budget=budget, seed=3)
        np.testing.assert_array_equal(result.values, plain.values)
        assert result.method == "multifidelity" and result.info["plan"] == "full_only"
        assert result.info["cost_total"] == result.info["n_coalitions"] <= budget
        assert result.info["n_cheap_coalitions"] == 0
    with pytest.raises(ValueError, match="full_only_share must be in"):
        MultiFidelityShapley(FunctionGame(d, never), cheap_cost=0.2, full_only_share=0.0)


@pytest.mark.parametrize("spec,parsed", [("full", Fidelity("full")), ("auto", Fidelity("auto")),
                                         ("steps=4", Fidelity("steps", 4)), ("size=32", Fidelity("size", 32)),
                                         ("model=/m", Fidelity("model", "/m"))])
def test_fidelity_specs(spec, parsed):
    assert fidelity_from(spec) == parsed and parsed.spec == spec


@pytest.mark.parametrize("spec", ["steps", "steps=0", "steps=x", "size=-2", "model=", "half"])
def test_a_bad_fidelity_is_named(spec):
    with pytest.raises(ValueError, match="fidelity"):
        fidelity_from(spec)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    from diffexplain.models.adapter import TextToImageAdapter
    from tests.helpers import tiny_text2image

    pipe, _, _ = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return TextToImageAdapter(pipe, num_inference_steps=8, guidance_scale=2.0, batch_size=8)


def test_a_prompt_explained_at_two_fidelities_records_both_levels(adapter):
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import explain_prompt

    cache = GenerationCache()
    long_prompt = "a big red circle on the left of a small square"  # 11 words: 2d is 1% of 2^d
    result = explain_prompt(adapter, long_prompt, seeds=1, embedder="pixel", fidelity="steps=2", cache=cache)
    assert result.method == "multifidelity" and result.settings["fidelity"] == "steps=2"
    assert result.info["cheap_settings"]["num_inference_steps"] == 2
    assert result.info["cost_ratio_stated"] == pytest.approx(2 / 8)
    assert result.info["n_cheap_coalitions"] == 80 and result.info["n_coalitions"] == 2  # default 2d
    assert result.info["cost_ratio_measured"] > 0
    assert result.values.sum() == pytest.approx(result.full_value - result.base_value, abs=1e-6)
    prompt = "a big red circle"  # 4 words: 2d buys half of the 16 coalitions, the full level alone
    short = explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity="steps=2", cache=cache)
    assert short.info["plan"] == "full_only" and short.info["n_cheap_coalitions"] == 0
    # every coalition at full fidelity: exact Shapley of the full model, from the cache
    everything = explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity="steps=2", budget=20,
                                cache=cache)
    shapley = explain_prompt(adapter, prompt, seeds=1, embedder="pixel", method="shapley", cache=cache)
    np.testing.assert_allclose(everything.values, shapley.values, atol=1e-5)
    with pytest.raises(ValueError, match="not cheaper than the model's 8 steps"):
        explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity="steps=8")
    with pytest.raises(ValueError, match="use method 'kernelshap', not 'lime'"):
        explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity="auto", method="lime")


def test_tolerance_stops_when_the_errors_are_small_and_caps_the_budget(adapter):
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import explain_prompt

    cache = GenerationCache()
    prompt = "a big red circle on the left"  # 7 words
    loose = explain_prompt(adapter, prompt, seeds=2, embedder="pixel", tolerance=10.0, cache=cache)
    # KernelSHAP's first round enumerates sizes 1 and d - 1 (2d + 2): no sampling error, so it may stop there
    assert [r["budget"] for r in loose.info["rounds"]] == [16] and loose.info["tolerance_reached"]
    tight = explain_prompt(adapter, prompt, seeds=2, embedder="pixel", tolerance=1e-9, budget=40, cache=cache)
    budgets = [r["budget"] for r in tight.info["rounds"]]
    assert budgets == [16, 23, 30, 37, 40]  # d more a round, capped
    assert not tight.info["tolerance_reached"] and tight.info["n_coalitions"] <= 40
    # the images of every round count: the union of their coalitions, each with every seed
    assert tight.info["n_coalitions_all_rounds"] >= tight.info["n_coalitions"]
    assert tight.n_generations == 2 * tight.info["n_coalitions_all_rounds"]
    # a round's move is measured against the previous round's values, relative to their L1 norm
    assert np.isinf(tight.info["rounds"][0]["moved"]) and all(np.isfinite(r["moved"]) for r in tight.info["rounds"][1:])
    medium = explain_prompt(adapter, prompt, seeds=2, embedder="pixel", tolerance=0.05, budget=64, cache=cache)
    last = medium.info["rounds"][-1]
    assert medium.info["tolerance_reached"] == (last["worst_stderr"] <= 0.05 or last["moved"] <= 0.05)
    # a sampled first round never stops the run: LIME goes on to its second round however loose the tolerance
    lime = explain_prompt(adapter, prompt, seeds=2, embedder="pixel", tolerance=10.0, method="lime", cache=cache)
    assert [r["budget"] for r in lime.info["rounds"]] == [9, 16]
    with pytest.raises(ValueError, match="tolerance applies to the sampled methods"):
        explain_prompt(adapter, prompt, seeds=1, embedder="pixel", tolerance=0.1, method="shapley")


def test_a_cheaper_pipeline_of_the_same_family_is_the_cheap_level_and_any_other_is_refused(adapter, tmp_path):
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import explain_prompt
    from tests.helpers import tiny_image_pipeline, tiny_text2image

    _, _, sibling = tiny_text2image(tmp_path / "sibling", seed=5)  # another SD pipeline, saved to disk
    prompt = "a big red circle on the left of a small square"
    cache = GenerationCache()
    result = explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity=f"model={sibling}", cache=cache)
    assert result.settings["fidelity"] == f"model={sibling}" and result.info["plan"] == "cheap_sampled"
    assert result.info["cost_ratio_stated"] == 1.0  # the same denoiser size, steps and pixels
    assert result.info["n_cheap_coalitions"] == 20 and result.info["n_coalitions"] == 2  # (2d - 2) / 1
    # the sibling's images are its own, none from the model's cache entries: 19 images for 20 coalitions,
    # as the two singletons of "a" send the same text
    assert (result.info["cheap_generations"], result.info["cheap_cached"]) == (19, 0)
    tiny_image_pipeline(tmp_path / "other", "pix2pix")
    other = tmp_path / "other" / "tiny-pix2pix"
    with pytest.raises(ValueError, match="generates from a source image"):
        explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity=f"model={other}")
    from tests.families import tiny_flux

    tiny_flux(tmp_path / "flux")
    with pytest.raises(ValueError, match="a cheaper version must be of the same family"):
        explain_prompt(adapter, prompt, seeds=1, embedder="pixel", fidelity=f"model={tmp_path / 'flux' / 'flux'}")
