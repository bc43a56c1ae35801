"""Explainers on games whose Shapley values are known in closed form."""

import itertools
import math

import numpy as np
import pytest

from diffexplain.explain.game import FunctionGame, MemoGame, all_masks
from diffexplain.explain.kernel_shap import KernelShapExplainer
from diffexplain.explain.lime import LimeExplainer
from diffexplain.explain.permutation import PermutationExplainer
from diffexplain.explain.shapley import ShapleyExplainer
from diffexplain.explain.smile import SmileExplainer


def glove_game():
    """Players 0 (left glove), 1 and 2 (right gloves): a pair is worth 1. Shapley: (2/3, 1/6, 1/6)."""
    return FunctionGame(3, lambda m: float(m[0] and (m[1] or m[2])))


def test_exact_shapley_matches_hand_computed_values_on_a_three_player_game():
    explanation = ShapleyExplainer().explain(glove_game())
    np.testing.assert_allclose(explanation.values, [2 / 3, 1 / 6, 1 / 6], atol=1e-7)
    assert explanation.base_value == 0.0 and explanation.full_value == 1.0
    assert explanation.info["n_coalitions"] == 8  # the empty coalition is included


def test_exact_shapley_on_an_asymmetric_game_with_the_empty_coalition_nonzero():
    # v(S) = 1 + 2*[0 in S] + 3*[1 in S]*[2 in S]; Shapley: (2, 1.5, 1.5); v(empty) = 1
    game = FunctionGame(3, lambda m: 1 + 2 * m[0] + 3 * (m[1] and m[2]))
    explanation = ShapleyExplainer().explain(game)
    np.testing.assert_allclose(explanation.values, [2.0, 1.5, 1.5], atol=1e-7)
    assert explanation.base_value == 1.0


def _random_game(d, seed):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=2 ** d)
    return FunctionGame(d, lambda m: table[int(np.sum(m * (1 << np.arange(d))))]), table


def _brute_force_shapley(d, table):
    phi = np.zeros(d)
    for order in itertools.permutations(range(d)):
        mask = 0
        for player in order:
            phi[player] += table[mask | (1 << player)] - table[mask]
            mask |= 1 << player
    return phi / math.factorial(d)


def test_exact_shapley_axioms_on_random_games():
    d = 5
    game, table = _random_game(d, 0)
    explanation = ShapleyExplainer().explain(game)
    np.testing.assert_allclose(explanation.values, _brute_force_shapley(d, table), atol=1e-6)
    # efficiency to float precision
    assert abs(explanation.values.sum() - (table[-1] - table[0])) < 1e-5
    # null player and symmetry: player 3 adds nothing, players 0 and 1 are interchangeable
    weights = np.array([1.0, 1.0, 0.5, 0.0, 2.0])
    game = FunctionGame(d, lambda m: float(np.dot(weights, m)) ** 2)
    values = ShapleyExplainer().explain(game).values
    assert abs(values[3]) < 1e-6
    assert abs(values[0] - values[1]) < 1e-6


def test_exact_shapley_refuses_too_many_words_and_points_to_sampled_methods():
    with pytest.raises(ValueError, match="permutation.*kernelshap"):
        ShapleyExplainer(max_players=12).explain(FunctionGame(13, lambda m: 0.0))


@pytest.mark.parametrize("explainer", [PermutationExplainer(), KernelShapExplainer()])
def test_sampled_estimators_converge_to_exact_on_a_known_game(explainer):
    d = 7
    weights = np.linspace(-1, 2, d)
    noise = np.random.default_rng(1).normal(scale=0.1, size=2 ** d)
    table = np.array([(weights @ m) ** 2 / 4 for m in all_masks(d)]) + noise
    game = FunctionGame(d, lambda m: table[int(np.sum(m * (1 << np.arange(d))))])
    exact = _brute_force_shapley(d, table)
    small = explainer.explain(game, budget=4 * d, seed=0)
    large = explainer.explain(game, budget=2 ** d, seed=0)
    err_small = np.abs(small.values - exact).mean()
    err_large = np.abs(large.values - exact).mean()
    assert err_large < 0.02
    assert err_large < err_small
    # efficiency holds for both estimators by construction
    assert abs(small.values.sum() - (table[-1] - table[0])) < 1e-6
    assert small.info["n_coalitions"] <= 4 * d


def test_kernelshap_with_every_coalition_is_exact():
    d = 6
    game, table = _random_game(d, 2)
    explanation = KernelShapExplainer().explain(game, budget=2 ** d, seed=3)
    np.testing.assert_allclose(explanation.values, _brute_force_shapley(d, table), atol=1e-8)


def test_sampled_estimators_are_exact_on_additive_games_at_a_small_budget():
    weights = np.array([0.5, -1.0, 2.0, 0.0, 0.25, 1.0, 3.0, -0.5])
    game = FunctionGame(8, lambda m: float(weights @ m) + 0.3)
    for explainer in (PermutationExplainer(), KernelShapExplainer()):
        for budget in (8 + 2, 8 + 5, 2 * 8):  # every word alone, then some leave-one-out coalitions
            explanation = explainer.explain(game, budget=budget, seed=0)
            np.testing.assert_allclose(explanation.values, weights, atol=1e-8)
            assert explanation.info["n_coalitions"] == budget


def test_below_2d_plus_2_both_estimators_buy_every_word_alone_then_leave_one_out_coalitions():
    d = 6
    game, table = _random_game(d, 7)
    for explainer in (PermutationExplainer(), KernelShapExplainer()):
        explanation = explainer.explain(game, budget=d + 4, seed=2)
        rows = np.asarray(explanation.coalitions, dtype=bool)
        sizes = sorted(rows.sum(axis=1).tolist())
        assert sizes == [0] + [1] * d + [d - 1] * 2 + [d], explainer.name
        assert abs(explanation.values.sum() - (table[-1] - table[0])) < 1e-5  # efficiency
    # multi-fidelity's correction asks for paired samples instead: their bootstrap measures its error
    sampled = KernelShapExplainer(singletons_first=False).explain(game, budget=d + 4, seed=2)
    assert sampled.info["n_sampled_coalitions"] == d + 2 and np.asarray(sampled.info["sampling_stderr"]).max() > 0


def test_balanced_orders_put_every_player_at_every_position_once_per_block():
    from diffexplain.explain.permutation import balanced_orders

    d = 7
    orders = balanced_orders(d, np.random.default_rng(0))
    for _ in range(3):
        block = np.stack([next(orders) for _ in range(d)])  # (d orderings, d positions)
        assert all(sorted(row) == list(range(d)) for row in block)  # each a permutation
        assert all(sorted(column) == list(range(d)) for column in block.T)  # each position holds everyone


def test_permutation_residuals_are_shrunk_by_their_error_and_cancel_on_pairwise_games():
    d = 7
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=d), np.triu(rng.normal(size=(d, d)), 1)
    pairwise = FunctionGame(d, lambda m: float(a @ m + m @ b @ m))
    explanation = PermutationExplainer().explain(pairwise, budget=6 * d, seed=1)
    assert explanation.info["n_permutation_pairs"] >= 2
    # an antithetic pair's residuals cancel on such games: nothing to shrink, nothing removed
    np.testing.assert_allclose(explanation.values, a + (b + b.T).sum(axis=1) / 2, atol=1e-9)
    # on a game of third order the residuals carry the estimate once there are many pairs
    c = rng.normal(size=(d, d, d))
    cubic = FunctionGame(d, lambda m: float(a @ m + np.einsum("ijk,i,j,k->", c, m, m, m) / 6))
    table = np.array([cubic(m[None])[0, 0] for m in all_masks(d)])
    exact = _brute_force_shapley(d, table)
    many = PermutationExplainer().explain(cubic, budget=2 ** d, seed=0)
    assert many.info["shrinkage"] > 0.9
    assert np.abs(many.values - exact).max() < 0.05 * np.abs(exact).max()
    ends_only = PermutationExplainer().explain(cubic, budget=2 * d + 2, seed=0)
    assert ends_only.info["n_permutation_pairs"] == 0
    assert np.abs(many.values - exact).mean() < np.abs(ends_only.values - exact).mean()


@pytest.mark.parametrize("d", [6, 7, 8])
def test_sampled_estimators_are_exact_on_pairwise_games_from_budget_2d_plus_2(d):
    # v(S) = sum a_i + sum_{i<j} b_ij: Shapley = a_i + sum_j b_ij / 2. Antithetic permutations and
    # KernelSHAP with sizes 1 and d-1 enumerated and paired samples (middle size included) are
    # exact on every such game; shap's enumeration rule or an unpaired middle size is not.
    rng = np.random.default_rng(d)
    a, b = rng.normal(size=d), np.triu(rng.normal(size=(d, d)), 1)
    game = FunctionGame(d, lambda m: float(a @ m + m @ b @ m))
    exact = a + (b + b.T).sum(axis=1) / 2
    for explainer in (PermutationExplainer(), KernelShapExplainer()):
        for budget in (2 * d + 2, 3 * d, 4 * d):
            for seed in range(3):
                explanation = explainer.explain(game, budget=budget, seed=seed)
                np.testing.assert_allclose(explanation.values, exact, atol=1e-8,
                                           err_msg=f"{explainer.name} budget={budget} seed={seed}")


def test_same_seed_same_estimate():
    game, _ = _random_game(6, 4)
    for explainer in (PermutationExplainer(), KernelShapExplainer(), LimeExplainer(), SmileExplainer(n_bootstrap=50)):
        kwargs = dict(budget=20, seed=5)
        a, b = explainer.explain(game, **kwargs), explainer.explain(game, **kwargs)
        np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("explainer,minimum", [(PermutationExplainer(), 8), (KernelShapExplainer(), 8),
                                               (LimeExplainer(), 8), (SmileExplainer(), 8)])
def test_budget_too_small_is_a_clear_error(explainer, minimum):
    game, _ = _random_game(6, 0)
    with pytest.raises(ValueError, match=f"budget={minimum - 1} is too small for {explainer.name}"):
        explainer.explain(game, budget=minimum - 1)


def test_lime_and_smile_recover_an_additive_game_with_perfect_fidelity():
    weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0])
    game = FunctionGame(5, lambda m: float(weights @ m) + 0.3)
    for explainer in (LimeExplainer(surrogate="ols"), SmileExplainer(n_bootstrap=200)):
        explanation = explainer.explain(game, budget=20, seed=0)
        np.testing.assert_allclose(explanation.values, weights, atol=1e-8)
        assert explanation.info["fidelity_r2"] == pytest.approx(1.0)


def test_smile_pvalues_separate_real_effects_from_noise():
    rng = np.random.default_rng(0)
    noise = {}

    def value(m):
        key = m.tobytes()
        noise.setdefault(key, rng.normal(scale=0.05))
        return 1.0 * m[0] + 0.8 * m[1] + noise[key]

    explanation = SmileExplainer(n_bootstrap=500).explain(FunctionGame(6, value), budget=48, seed=1)
    assert explanation.pvalues[0] < 0.01 and explanation.pvalues[1] < 0.01
    assert (explanation.pvalues[2:] > 0.01).all()
    assert (explanation.pvalues > 0).all() and (explanation.pvalues <= 1).all()


def test_memo_game_counts_distinct_coalitions_and_enforces_budget():
    calls = []
    game = FunctionGame(3, lambda m: calls.append(1) or float(m.sum()))
    memo = MemoGame(game, budget=3)
    memo(all_masks(3)[:2])
    memo(all_masks(3)[:2])
    assert memo.n_evaluated == 2 and len(calls) == 2
    with pytest.raises(RuntimeError, match="budget"):
        memo(all_masks(3)[:4])
