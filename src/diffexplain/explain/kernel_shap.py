"""KernelSHAP: Shapley values as a weighted least-squares fit under the efficiency constraint.

Coalition sizes are visited from the heaviest Shapley-kernel mass inward; a size pair (s, d-s)
is enumerated completely when the budget allows, the rest of the budget is spent on paired
samples (a subset and its complement, at every size) drawn in proportion to the remaining kernel
mass, as in shap's KernelExplainer. Two departures from shap: sizes 1 and d-1 are enumerated
whenever they fit (budget >= 2d + 2; below it, every size-1 coalition and as many of size d-1 as
fit), and the middle size's samples are paired too. Sizes 1 and
d-1 alone give phi_i = (v(i) - v(0) + v(N) - v(N - i)) / 2, exact for every game of order <= 2,
and paired rows keep it exact; shap's rule and unpaired middle-size samples leave errors of the
size of the values themselves on such games. With every coalition enumerated the fit is exactly
the Shapley value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Explanation
from ._common import check_budget, combine_stderr, feature_names, generation_counts, seed_stderr
from .game import MemoGame

if TYPE_CHECKING:
    from ..protocols import Game


def constrained_wls(z: np.ndarray, y: np.ndarray, w: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Solve min sum_i w_i (y_i - z_i . phi)^2 subject to sum(phi) = total.

    Args:
        z: (n, d) 0/1 coalition matrix; y: (n, K) centred values v(S) - v(empty); w: (n,);
        total: (K,) v(D) - v(empty).

    Returns:
        (d, K) coefficients.
    """
    d = z.shape[1]
    # eliminate the last coefficient: phi_last = total - sum(others)
    x = z[:, :-1] - z[:, -1:]
    target = y - z[:, -1:] * total[None, :]
    sw = np.sqrt(w)[:, None]
    solution, *_ = np.linalg.lstsq(x * sw, target * sw, rcond=None)
    phi = np.empty((d, y.shape[1]))
    phi[:-1] = solution
    phi[-1] = total - solution.sum(axis=0)
    return phi


class KernelShapExplainer:
    """KernelSHAP with paired sampling, exact efficiency and bootstrap standard errors."""

    name = "kernelshap"

    def __init__(self, n_bootstrap: int = 200, singletons_first: bool = True):
        """
        Args:
            n_bootstrap: refits on resampled sampled rows, for the sampling standard error.
            singletons_first: below 2d + 2 coalitions, every word alone and then leave-one-out
                coalitions (less error); False: paired samples at every size, whose bootstrap
                measures the fit's sampling error (what multi-fidelity's shrinkage needs).
        """
        self.n_bootstrap = n_bootstrap
        self.singletons_first = singletons_first

    def explain(self, game: Game, *, budget: int, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        """Fit Shapley values from at most ``budget`` distinct coalitions (empty and full included)."""
        d = game.n_players
        budget = check_budget(budget, min(d + 2, 2 ** d), "kernelshap", d)
        rng = np.random.default_rng(seed)
        memo = MemoGame(game, budget=budget)
        empty_full = memo(np.stack([np.zeros(d, bool), np.ones(d, bool)]))
        v0, total = empty_full[0], empty_full[1] - empty_full[0]
        if d == 1:
            phi = total[None, :]
            return self._result(game, feature_names_, phi, empty_full, np.zeros(1), memo, budget, seed, 0)

        n_sizes = (d - 1 + 1) // 2  # sizes 1..ceil((d-1)/2); size s is paired with d-s
        n_paired = (d - 1) // 2
        mass = np.array([(d - 1) / (s * (d - s)) for s in range(1, n_sizes + 1)])
        mass[:n_paired] *= 2
        mass /= mass.sum()
        remaining = budget - 2
        rows: list[np.ndarray] = []
        weights: list[float] = []
        weight_left = 1.0
        left = mass.copy()
        full_sizes = 0
        for index, size in enumerate(range(1, n_sizes + 1)):
            count = math.comb(d, size) * (2 if index < n_paired else 1)
            if index == 0 and index < n_paired and d <= remaining < count and self.singletons_first:
                # below 2d + 2: every word alone, then as many leave-one-out coalitions as fit
                eye = np.eye(d, dtype=bool)
                rows += [*eye, *~eye[rng.permutation(d)[:remaining - d]]]
                weights += [mass[index] / count] * remaining
                remaining = 0
                break
            # shap enumerates a size only when its expected draws cover it; sizes 1 and d-1 are
            # enumerated whenever they fit, which makes the fit exact on games of order <= 2
            if remaining * left[index] / count < 1 - 1e-8 and not (index == 0 and remaining >= count):
                break
            per_subset = mass[index] / count
            for subset in itertools.combinations(range(d), size):
                mask = np.zeros(d, bool)
                mask[list(subset)] = True
                rows.append(mask)
                weights.append(per_subset)
                if index < n_paired:
                    rows.append(~mask)
                    weights.append(per_subset)
            remaining -= count
            weight_left -= mass[index]
            full_sizes += 1
            if left[index] < 1:
                left /= 1 - left[index]
            left[index] = 0.0
        fixed = len(rows)
        sampled: dict[bytes, list] = {}
        if full_sizes < n_sizes and remaining > 0:
            sizes = np.arange(full_sizes + 1, n_sizes + 1)
            probs = mass[full_sizes:] / mass[full_sizes:].sum()
            attempts = 0
            while attempts < 100 * budget:
                attempts += 1
                size = int(rng.choice(sizes, p=probs))
                mask = np.zeros(d, bool)
                mask[rng.choice(d, size=size, replace=False)] = True
                pair = [mask, ~mask]  # at the middle size too: unpaired rows bias order-2 games
                new = [m for m in pair if m.tobytes() not in sampled]
                if len(new) > remaining:
                    break
                remaining -= len(new)
                for m in pair:
                    sampled.setdefault(m.tobytes(), [m, 0])[1] += 1
                if remaining == 0:
                    break
            drawn = sum(hits for _, hits in sampled.values())
            for mask, hits in sampled.values():  # the leftover kernel mass, spread by draw count
                rows.append(mask)
                weights.append(weight_left * hits / drawn)
        z = np.stack(rows).astype(float)
        w = np.array(weights)
        y = memo(np.stack(rows)) - v0[None, :]
        phi = constrained_wls(z, y, w, total)
        # sampling error: refit on bootstrap resamples of the sampled rows (enumerated rows fixed)
        sampling = np.zeros(d)
        n_sampled = len(rows) - fixed
        if n_sampled > 1 and self.n_bootstrap > 0:
            boot = np.empty((self.n_bootstrap, d))
            for b in range(self.n_bootstrap):
                pick = np.concatenate([np.arange(fixed), fixed + rng.integers(0, n_sampled, n_sampled)])
                boot[b] = constrained_wls(z[pick], y[pick], w[pick], total).mean(axis=1)
            sampling = boot.std(axis=0, ddof=1)
        return self._result(game, feature_names_, phi, empty_full, sampling, memo, budget, seed, n_sampled)

    def _result(self, game, names, phi, empty_full, sampling, memo, budget, seed, n_sampled) -> Explanation:
        used, cached = generation_counts(game, memo.n_evaluated)
        return Explanation(
            method=self.name, features=feature_names(game, names), values=phi.mean(axis=1),
            base_value=float(empty_full[0].mean()), full_value=float(empty_full[1].mean()),
            stderr=combine_stderr(sampling, seed_stderr(phi)), n_generations=used, n_cached=cached,
            info=dict(n_coalitions=memo.n_evaluated, n_sampled_coalitions=n_sampled, budget=budget,
                      sampling_stderr=sampling.tolist()),
            coalitions=memo.evaluated_masks(),
            settings=dict(method=self.name, budget=budget, seed=seed, n_bootstrap=self.n_bootstrap,
                          singletons_first=self.singletons_first),
        )
