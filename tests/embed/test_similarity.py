import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from diffexplain.embed.similarity import bootstrap_w1_null


def test_bootstrap_w1_null_is_the_w1_of_resampled_pools():
    rng = np.random.default_rng(0)
    # ties, zeros and a denormal, as in ReLU embeddings
    u = np.maximum(rng.normal(size=50), 0.0)
    v = np.round(rng.normal(size=50), 1)
    u[:3] = 1e-310
    null = bootstrap_w1_null(u, v, 30, np.random.default_rng(7))
    positions = np.random.default_rng(7).integers(0, 100, (30, 100))
    draws = np.sort(np.concatenate([u, v]))[positions]
    expected = [wasserstein_distance(d[:50], d[50:]) for d in draws]
    np.testing.assert_allclose(null, expected, rtol=1e-12, atol=1e-15)
    assert null.shape == (30,) and (null >= 0).all()


def test_bootstrap_w1_null_batches_pairs_on_shared_draws_block_by_block():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(3, 40)), rng.exponential(size=(3, 40))
    # blocks of 7 replicates: the positions are drawn 7 rows at a time from the same generator
    null = bootstrap_w1_null(u, v, 20, np.random.default_rng(3), block=7)
    draws_rng = np.random.default_rng(3)
    positions = np.concatenate([draws_rng.integers(0, 80, (rows, 80)) for rows in (7, 7, 6)])
    for p in range(3):
        draws = np.sort(np.concatenate([u[p], v[p]]))[positions]
        expected = [wasserstein_distance(d[:40], d[40:]) for d in draws]
        np.testing.assert_allclose(null[p], expected, rtol=1e-12)
    assert null.shape == (3, 20)
    # a pair with a real shift sits far out in its own null; identical groups do not
    shifted = bootstrap_w1_null(u[0], u[0] + 3.0, 200, np.random.default_rng(0))
    assert (shifted < 3.0).all()


def test_bootstrap_w1_null_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="u and v must be 1-D or 2-D of equal shape"):
        bootstrap_w1_null(np.zeros(3), np.zeros(4), 5, np.random.default_rng(0))
