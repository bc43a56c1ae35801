"""Weighted linear surrogates for LIME and SMILE, and the weighted R^2 they are judged by."""

from __future__ import annotations

import numpy as np

from ..metrics.functional import weighted_r2  # noqa: F401  (LIME's and SMILE's fidelity)

SURROGATES = ("ols", "ridge", "bayesian_ridge")


def fit_surrogate(z: np.ndarray, y: np.ndarray, weights: np.ndarray, kind: str = "ols",
                  alpha: float = 1.0) -> tuple[np.ndarray, float]:
    """Fit y ~ z . coef + intercept with sample weights.

    Args:
        z: (n, d) binary design; y: (n,) responses; weights: (n,) non-negative.
        kind: "ols" (weighted least squares), "ridge" (penalty ``alpha`` on the coefficients, as
            scikit-learn's Ridge), or "bayesian_ridge" (scikit-learn's BayesianRidge).

    Returns:
        (coef of shape (d,), intercept).
    """
    if kind not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if kind == "bayesian_ridge":
        from sklearn.linear_model import BayesianRidge

        model = BayesianRidge().fit(z, y, sample_weight=weights)
        return model.coef_.astype(np.float64), float(model.intercept_)
    total = weights.sum()
    z_mean = weights @ z / total
    y_mean = weights @ y / total
    zc, yc = z - z_mean, y - y_mean
    sw = np.sqrt(weights)[:, None]
    if kind == "ols":
        coef, *_ = np.linalg.lstsq(zc * sw, yc * sw[:, 0], rcond=None)
    else:
        gram = (zc * weights[:, None]).T @ zc + alpha * np.eye(z.shape[1])
        coef = np.linalg.solve(gram, (zc * weights[:, None]).T @ yc)
    return coef, float(y_mean - z_mean @ coef)
