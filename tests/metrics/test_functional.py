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
