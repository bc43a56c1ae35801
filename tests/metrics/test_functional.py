import numpy as np
import pytest
from scipy.stats import wasserstein_distance
from sklearn.metrics import r2_score, roc_auc_score

from diffexplain.embed.similarity import pairwise_similarity, wasserstein_1d
from diffexplain.explain.game import FunctionGame
from diffexplain.explain.shapley import ShapleyExplainer
from diffexplain.metrics import (
    check_axioms,
    consistency,
    fidelity,
    precision_at_k,
    ranks,
    ranks_aligned,
    rmse_normalised,
    roc_auc,
    ruzicka_similarity,
)


def test_ranks_aligned_by_hand():
    # Gupta & Kanoria's "a dog wearing hat": truth (0.05, 0.45, 0.20, 0.30)
    truth = [0.05, 0.45, 0.20, 0.30]
    assert ranks(truth).tolist() == [4, 1, 3, 2]
    assert ranks_aligned([0.1, 0.5, 0.3, 0.2], truth) == 0.5  # ranks 4,1,2,3: first two aligned
    assert ranks_aligned([0.1, 0.5, 0.3, 0.1], truth) == 0.25  # ranks 3,1,2,3: only the second
    assert ranks_aligned(truth, truth) == 1.0


def test_rmse_normalised_by_hand():
    # both normalised: (0.5, 0.5) vs (0.25, 0.75) -> sqrt(mean(0.0625, 0.0625)) = 0.25
    assert rmse_normalised([1, 1], [1, 3]) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    relevant = rng.integers(0, 2, 12)
    relevant[:2] = [0, 1]
    scores = np.round(rng.normal(size=12), 1)  # rounding creates ties
    assert roc_auc(scores, relevant) == pytest.approx(roc_auc_score(relevant, scores))


def test_roc_auc_single_class_is_nan_and_non_binary_is_an_error():
    assert np.isnan(roc_auc([1, 2], [1, 1]))
    with pytest.raises(ValueError, match="relevant must be binary"):
        roc_auc([1, 2], [0, 2])
    with pytest.raises(ValueError, match="same length"):
        roc_auc([1, 2, 3], [0, 1])


def test_precision_at_k_by_hand():
    scores = [0.9, 0.1, 0.5, 0.4]
    relevant = [1, 0, 0, 1]
    assert precision_at_k(scores, relevant, k=1) == 1.0
    assert precision_at_k(scores, relevant, k=2) == 0.5
    assert precision_at_k(scores, relevant) == 0.5  # k = number of relevant words
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(scores, relevant, k=5)


def test_weighted_r2_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y, prediction, weights = rng.normal(size=20), rng.normal(size=20), rng.uniform(0.1, 1, 20)
    assert fidelity(y, prediction, weights) == pytest.approx(r2_score(y, prediction, sample_weight=weights))


def test_ruzicka_by_hand():
    assert ruzicka_similarity([1, -2, 0], [2, 1, 0]) == pytest.approx((1 + 1) / (2 + 2))
    assert ruzicka_similarity([0, 0], [0, 0]) == 1.0


def test_consistency_by_hand():
    out = consistency([[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(out["mean"], [2.0, 2.0])
    np.testing.assert_allclose(out["std"], [np.sqrt(2), 0.0])
    np.testing.assert_allclose(out["cv"], [np.sqrt(2) / 2, 0.0])
    with pytest.raises(ValueError, match="R >= 2"):
        consistency([[1.0, 2.0]])


def test_axiom_checks_pass_for_shapley_and_catch_violations():
    weights = np.array([1.0, 1.0, 0.0, 2.0])
    game = FunctionGame(4, lambda m: float(weights @ m) ** 2)
    explanation = ShapleyExplainer().explain(game)
    report = check_axioms(explanation.values, game, 4, explanation.full_value, explanation.base_value)
    assert report["null_players"] == [2] and (0, 1) in report["symmetric_pairs"]
    assert report["efficiency"] and report["symmetry"] and report["null_player"]
    broken = check_axioms(np.array([1.0, 2.0, 0.5, 3.0]), game, 4, explanation.full_value, explanation.base_value)
    assert not broken["symmetry"] and not broken["null_player"]


def test_wasserstein_matches_scipy_and_similarities():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    for i in range(3):
        assert wasserstein_1d(u[i], v[i]) == pytest.approx(wasserstein_distance(u[i], v[i]))
    np.testing.assert_allclose(pairwise_similarity(u, v, "wasserstein"), 1 - wasserstein_1d(u, v))
    np.testing.assert_allclose(pairwise_similarity(u, u, "cosine"), 1.0)
    assert pairwise_similarity(np.array([3.0, 4.0]), np.array([0.0, 0.0]), "neg_l2") == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="similarity must be one of"):
        pairwise_similarity(u, v, "dot")


def test_stability_aligns_a_variant_with_extra_words():
    from diffexplain.metrics import align_words, stability
    from diffexplain.types import Explanation

    a = Explanation(method="x", features=("a", "red", "circle"), values=np.array([0.0, 2.0, 1.0]), base_value=0,
                    full_value=1)
    b = Explanation(method="x", features=("please", "a", "red,", "circle"), values=np.array([5.0, 0.0, 2.0, 1.0]),
                    base_value=0, full_value=1)
    assert align_words(a.features, b.features) == [(0, 1), (1, 2), (2, 3)]
    assert stability(a, b) == 1.0  # 'please' is not shared; the shared words agree exactly
    c = Explanation(method="x", features=("a", "red", "circle"), values=np.array([0.0, 1.0, 2.0]), base_value=0,
                    full_value=1)
    # normalised (0, 2/3, 1/3) vs (0, 1/3, 2/3): (0 + 1/3 + 1/3) / (0 + 2/3 + 2/3) = 0.5
    assert stability(a, c) == pytest.approx(0.5)


# ------------------------------------------------ the papers' own definitions, on their worked examples
def test_a_cats_house_ranks_aligned_one_in_three_as_in_gupta_and_kanoria():
    truth, shapley = [0.05, 0.45, 0.5], [0.13, 0.59, 0.28]
    assert ranks(truth).tolist() == [3, 2, 1] and ranks(shapley).tolist() == [3, 1, 2]
    assert ranks_aligned(shapley, truth) == pytest.approx(1 / 3)
    assert f"{100 * ranks_aligned(shapley, truth):.2f}%" == "33.33%"


def test_a_cats_house_rmse_in_the_papers_formula_and_in_its_tables_arithmetic():
    truth, shapley = [0.05, 0.45, 0.5], [0.13, 0.59, 0.28]
    # squared errors 0.0064, 0.0196, 0.0484 (the paper's table); its figure 0.2728 is sqrt of their sum
    assert rmse_normalised(shapley, truth, mean=False) == pytest.approx(0.2728, abs=5e-5)
    assert rmse_normalised(shapley, truth) == pytest.approx(np.sqrt(0.0744 / 3), abs=1e-6)
    # "books and coffee": (0.47, 0.11, 0.42) vs (0.50, 0.10, 0.40) -> 0.04 in the paper's table
    assert round(rmse_normalised([0.47, 0.11, 0.42], [0.5, 0.1, 0.4], mean=False), 2) == 0.04


def test_ranks_aligned_with_tied_truth_asks_no_order_inside_a_tie():
    truth = [0.0, 0.5, 0.0, 0.5]  # two fillers worth 0, two content words tied
    assert ranks_aligned([0.1, 0.6, 0.2, 0.4], truth, ties="range") == 1.0
    # "min" ranks 4,1,3,2 vs 3,1,3,1: words 1 and 2
    assert ranks_aligned([0.1, 0.6, 0.2, 0.4], truth) == 0.5
    # word 0 ranked 1st and word 3 3rd: both outside their ties
    assert ranks_aligned([0.7, 0.6, 0.2, 0.4], truth, ties="range") == 0.5
    with pytest.raises(ValueError, match="ties must be"):
        ranks_aligned([1, 2], [1, 2], ties="dense")


@pytest.mark.parametrize("seed", range(6))
def test_spearman_matches_scipy_with_and_without_ties(seed):
    from scipy.stats import spearmanr

    from diffexplain.metrics import spearman

    rng = np.random.default_rng(seed)
    a = rng.normal(size=15)
    b = a + rng.normal(size=15)
    if seed % 2:
        a, b = np.round(a), np.round(b)  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(spearman(np.ones(5), np.arange(5)))


def test_bootstrap_ci_agrees_with_scipys_percentile_bootstrap():
    from scipy.stats import bootstrap, spearmanr

    from diffexplain.metrics import bootstrap_ci, spearman

    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = 0.6 * x + rng.normal(size=60)
    ours = bootstrap_ci(lambda i: spearman(x[i], y[i]), 60, n_resamples=4000, seed=1)
    theirs = bootstrap((x, y), lambda a, b: spearmanr(a, b).statistic, paired=True, vectorized=False,
                       n_resamples=4000, method="percentile", random_state=2).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.03) and ours[1] == pytest.approx(theirs.high, abs=0.03)
    mean_ci = bootstrap_ci(lambda i: float(x[i].mean()), 60, n_resamples=4000)
    sem = x.std(ddof=1) / np.sqrt(60)
    assert mean_ci[0] == pytest.approx(x.mean() - 1.96 * sem, abs=0.03)
    assert mean_ci[1] == pytest.approx(x.mean() + 1.96 * sem, abs=0.03)
    with pytest.raises(ValueError, match="bootstrap needs"):
        bootstrap_ci(lambda i: 0.0, 1)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    from diffexplain.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2 + 1  # N(1, 4 I): |mu|^2 = 3, tr = 3 + 12 - 2 * 6 = 3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)
    with pytest.raises(ValueError, match="feature arrays"):
        frechet_distance(a, b[:, :2])
