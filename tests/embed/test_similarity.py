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
    draws_rng = np.random.default_rng(7)
    pool = np.concatenate([u, v])
    draws = pool[draws_rng.integers(0, 100, (30, 100))]
    expected = [wasserstein_distance(d[:50], d[50:]) for d in draws]
    np.testing.assert_allclose(null, expected, rtol=1e-12, atol=1e-15)
    assert null.shape == (30,) and (null >= 0).all()


def test_bootstrap_w1_null_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="u and v must be 1-D of equal length"):
        bootstrap_w1_null(np.zeros(3), np.zeros(4), 5, np.random.default_rng(0))
