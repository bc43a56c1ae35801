"""Multi-fidelity Shapley: a diffusion model's cheap versions of itself as control variates.

The same coalition generated at a few denoising steps, at a lower resolution or by a smaller
sibling gives an image strongly correlated with the full one. With a cheap game ``c`` (evaluated
on every coalition, or many) and the full game ``f`` (evaluated on few), Shapley values are linear
in the game, so

    Shapley(f) = alpha * Shapley(c) + Shapley(f - alpha * c),

the first term computed (near) exactly from cheap evaluations, the second estimated by KernelSHAP
from the few paired evaluations of the difference game. Where the two games are correlated the
difference game has little variance, and its estimate little error: the control-variate idea of
multi-fidelity Monte Carlo (Peherstorfer, Willcox & Gunzburger, SIAM Review 2018). ``alpha`` is
the least-squares coefficient of ``f`` on ``c`` over the paired coalitions (the control-variate
optimum), shrunk by its standard error, 0 when the cheap game does not vary (1 where only the
empty and full coalitions are paired: ``MultiFidelityShapley``). Efficiency holds exactly, and with every coalition
evaluated at full fidelity the result is exact Shapley of the full game.

Cost is counted in full-generation equivalents: a full evaluation counts 1, a cheap one its
measured or stated cost ratio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import Explanation
from ._common import combine_stderr, feature_names, generation_counts, seed_stderr
from .game import MemoGame
from .kernel_shap import KernelShapExplainer
from .shapley import shapley_from_table

if TYPE_CHECKING:
    from ..protocols import Game

MAX_EXACT_CHEAP = 10  # words up to which the cheap game is evaluated on every coalition (1,024)


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """Which cheap version of the model a multi-fidelity explanation uses.

    Attributes:
        kind: "full" (none: the plain estimator), "auto" (a fifth of the steps, at least 2),
            "steps" (``value`` denoising steps), "size" (``value`` pixels a side) or "model" (the
            pipeline folder ``value``, of the same family).
        value: the steps, the side or the folder.
    """

    kind: str = "full"
    value: int | str | None = None

    @property
    def spec(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value}"

    @property
    def is_full(self) -> bool:
        return self.kind == "full"


def fidelity_from(spec: str | Fidelity) -> Fidelity:
    """Parse "full", "auto", "steps=K", "size=S" or "model=DIR".

    Raises:
        ValueError: naming the spec and the forms it may take.
    """
    if isinstance(spec, Fidelity):
        return spec
    kind, equals, value = str(spec).partition("=")
    forms = "'full', 'auto', 'steps=K', 'size=S' or 'model=DIR'"
    if kind in ("full", "auto") and not equals:
        return Fidelity(kind)
    if kind in ("steps", "size") and equals:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"fidelity {spec!r}: {kind} must be a positive integer; fidelity takes {forms}")
        return Fidelity(kind, int(value))
    if kind == "model" and value:
        return Fidelity(kind, value)
    raise ValueError(f"fidelity must be one of {forms}, got {spec!r}")


def cheap_adapter(adapter: Any, fidelity: Fidelity) -> Any:
    """The adapter of the cheap level (``adapter.variant``).

    Raises:
        ValueError: where the fidelity is not cheaper than the adapter (as many steps or more, a
            larger size) or names a pipeline of another family.
    """
    if fidelity.kind in ("auto", "steps"):
        steps = max(2, adapter.num_inference_steps // 5) if fidelity.kind == "auto" else int(fidelity.value or 0)
        if steps >= adapter.num_inference_steps:
            raise ValueError(f"fidelity {fidelity.spec!r} is not cheaper than the model's "
                             f"{adapter.num_inference_steps} steps")
        return adapter.variant(num_inference_steps=steps)
    if fidelity.kind == "size":
        side = int(fidelity.value or 0)
        if side >= max(adapter.height, adapter.width):
            raise ValueError(f"fidelity {fidelity.spec!r} is not smaller than the model's "
                             f"{adapter.height}x{adapter.width} images")
        return adapter.variant(height=side, width=side)
    if fidelity.kind == "model":
        from ..models.loading import load_pipeline

        return adapter.variant(load_pipeline(str(fidelity.value)))
    raise ValueError(f"fidelity {fidelity.spec!r} has no cheap level")


def stated_cost(adapter: Any, cheap: Any) -> float:
    """What one cheap image costs in full ones, before any is timed: the ratio of denoising steps x
    pixels x denoiser parameters (a step's cost grows with each), at most 1."""
    from ..models.adapter import denoiser_of

    def parameters(pipe: Any) -> int:
        return sum(p.numel() for p in denoiser_of(pipe).parameters())

    return min(1.0, cheap.num_inference_steps / adapter.num_inference_steps
               * cheap.height * cheap.width / (adapter.height * adapter.width)
               * parameters(cheap.pipe) / parameters(adapter.pipe))


class _Width:
    """Passes a game through and notes how many image seeds (columns) its values have."""

    def __init__(self, game: Game):
        self.game, self.n_players, self.n_seeds = game, game.n_players, 1

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        values = np.asarray(self.game(masks), dtype=np.float64)
        self.n_seeds = values.shape[1] if values.ndim == 2 else 1
        return values


class MultiFidelityShapley:
    """Shapley values of a full game from many cheap evaluations and few full ones.

    The budget is spent on the cheap level first. Where every cheap coalition fits with at least
    d + 2 full ones beside it, the cheap game's Shapley values are exact and the rest of the budget
    buys full coalitions for a KernelSHAP fit of the difference game ``f - alpha c``; the part of
    that correction that differs between words is shrunk towards zero by its sampling error
    (positive-part James-Stein: a noisy correction costs more than the bias it removes), as far as
    the paired values' correlation (squared) says the cheap level is worth shrinking towards;
    ``alpha`` itself is shrunk by its standard error, so an unrelated cheap game falls back to
    KernelSHAP on the full coalitions. Otherwise the full game is evaluated on the empty and the
    full coalition only (its efficiency total,
    shared equally: the cheap level's bias is not estimable from so few) and the cheap game's
    values come from KernelSHAP on as many cheap coalitions as the budget buys. On held-out shapes
    captions the cheap level's ranking differs little from the full one's, and this order of
    spending has the least error at small budgets (``benchmarks.estimators``).

    Where the budget buys a large share of all 2^d coalitions at full fidelity, the cheap level is
    left out: KernelSHAP's error falls to zero as it nears every coalition, the cheap level's bias
    does not (the difference game is of high order: its KernelSHAP fit on few rows corrects
    little). On the shapes model the cross-over lies near a quarter of the coalitions.

    Args:
        cheap: the cheap game (same players, same seeds).
        cheap_cost: what one cheap evaluation costs in full evaluations (e.g. 0.25).
        n_bootstrap: bootstrap refits of the KernelSHAP fits (their sampling error); the
            correction's shrinkage uses at least 50.
        full_only_share: from a budget of this share of the 2^d coalitions, plain KernelSHAP on
            the full game (``info["plan"] == "full_only"``); None: the cheap level at every budget.
    """

    name = "multifidelity"

    def __init__(self, cheap: Game, *, cheap_cost: float, n_bootstrap: int = 200,
                 full_only_share: float | None = 0.25):
        if not 0 < cheap_cost <= 1:
            raise ValueError(f"cheap_cost must be in (0, 1] full evaluations, got {cheap_cost}")
        if full_only_share is not None and not 0 < full_only_share <= 1:
            raise ValueError(f"full_only_share must be in (0, 1] or None, got {full_only_share}")
        self.cheap, self.cheap_cost, self.n_bootstrap = cheap, cheap_cost, n_bootstrap
        self.full_only_share = full_only_share

    def allocation(self, d: int, budget: float) -> tuple[int, int]:
        """(full coalitions, cheap coalitions) for ``budget`` full-generation equivalents; no cheap
        coalition where the budget buys ``full_only_share`` of all 2^d coalitions at full fidelity.

        Raises:
            ValueError: where the budget buys neither d + 2 cheap coalitions beside the two full ones.
        """
        share = self.full_only_share
        if share is not None and budget >= share * 2 ** d and budget >= min(d + 2, 2 ** d):
            return min(2 ** d, int(budget + 1e-6)), 0
        exact_cost = 2 ** d * self.cheap_cost
        if d <= MAX_EXACT_CHEAP and exact_cost + d + 2 <= budget:
            return min(2 ** d, int(budget - exact_cost + 1e-6)), 2 ** d
        cheap = min(2 ** d, int((budget - 2) / self.cheap_cost + 1e-6))
        if cheap < min(d + 2, 2 ** d):
            raise ValueError(f"budget={budget} full-generation equivalents is too small for multifidelity with "
                             f"{d} features: it needs at least {2 + (d + 2) * self.cheap_cost:g}")
        return 2, cheap

    def explain(self, game: Game, *, budget: float, seed: int = 0,
                feature_names_: Sequence[str] | None = None) -> Explanation:
        """``game`` is the full game; ``budget`` counts full-generation equivalents per image seed
        (a full coalition 1, a cheap one ``cheap_cost``)."""
        d = game.n_players
        if self.cheap.n_players != d:
            raise ValueError(f"the cheap game has {self.cheap.n_players} players, the full game {d}")
        n_full, n_cheap = self.allocation(d, budget)
        if n_cheap == 0:  # KernelSHAP nears every coalition; the cheap level's bias would not shrink
            width = _Width(game)
            plain = KernelShapExplainer(self.n_bootstrap).explain(width, budget=n_full, seed=seed,
                                                                  feature_names_=feature_names(game, feature_names_))
            used, cached = generation_counts(game, plain.info["n_coalitions"])
            cost = float(plain.info["n_coalitions"] * width.n_seeds)
            return dataclasses.replace(plain, method=self.name, n_generations=used, n_cached=cached, info=dict(
                plain.info, plan="full_only", n_cheap_coalitions=0, alpha=0.0, shrinkage=1.0, cheap_exact=False,
                cost_full=cost, cost_cheap=0.0, cost_total=cost, cheap_cost=self.cheap_cost,
                cheap_generations=0, cheap_cached=0, correlation=float("nan")),
                settings=dict(method=self.name, budget=budget, seed=seed, cheap_cost=self.cheap_cost,
                              n_bootstrap=self.n_bootstrap, full_only_share=self.full_only_share))
        cheap, full = MemoGame(self.cheap), MemoGame(game)
        ends = np.stack([np.zeros(d, bool), np.ones(d, bool)])
        full_ends = full(ends)  # (2, K)
        if n_cheap == 2 ** d:
            from ..metrics.functional import all_masks

            phi_cheap = shapley_from_table(cheap(all_masks(d)), d)  # (d, K)
            cheap_sampling = np.zeros(d)
        else:
            fitted = KernelShapExplainer(self.n_bootstrap).explain(cheap, budget=n_cheap, seed=seed + 1)
            phi_cheap = fitted.values[:, None].astype(np.float64)  # (d, 1): the seeds' mean
            cheap_sampling = np.nan_to_num(fitted.stderr if fitted.stderr is not None else np.zeros(d))
        if n_full > 2:
            # the full game's coalitions: KernelSHAP's draw, which does not depend on the values
            KernelShapExplainer(0, singletons_first=False).explain(full, budget=n_full, seed=seed)
        masks = full.evaluated_masks()
        f, c = full(masks).mean(axis=1), cheap(masks).mean(axis=1)
        correlation = (float(np.corrcoef(f, c)[0, 1]) if len(f) > 2 and np.var(c) > 1e-18 and np.var(f) > 1e-18
                       else float("nan"))
        alpha = 1.0
        if n_full > 2:
            alpha = 0.0 if np.var(c) < 1e-18 else float(np.cov(f, c, bias=True)[0, 1] / np.var(c))
            if len(f) > 2 and np.var(c) >= 1e-18:
                # shrunk by its standard error: a spurious correlation over few pairs adds the cheap
                # level's values as noise
                residual = f - f.mean() - alpha * (c - c.mean())
                alpha_var = float(residual @ residual) / (len(f) - 2) / (len(f) * np.var(c))
                alpha *= max(0.0, 1.0 - alpha_var / max(alpha ** 2, 1e-300))

        class Difference:
            n_players = d

            def __call__(self, masks: np.ndarray) -> np.ndarray:
                return full(masks) - alpha * cheap(masks)

        difference = Difference()
        total = float(np.diff(difference(ends), axis=0).mean())  # the difference game's efficiency total
        shrink, correction_error = 0.0, np.zeros(d)
        deviation = np.zeros(d)
        if n_full > 2:
            # paired samples below 2d + 2: their bootstrap is what the shrinkage reads
            fit = KernelShapExplainer(max(self.n_bootstrap, 50), singletons_first=False).explain(
                difference, budget=n_full, seed=seed)
            deviation = fit.values - total / d
            sampling = np.asarray(fit.info["sampling_stderr"])
            # positive-part James-Stein on the words' differences: 1 where the fit is exhaustive
            spread = float(np.mean(deviation ** 2))
            shrink = 1.0 if spread <= 0 else max(0.0, 1.0 - float(np.mean(sampling ** 2)) / spread)
            # ... towards the cheap level only as far as the paired values say it is a good prior
            trust = max(0.0, correlation) ** 2 if np.isfinite(correlation) else 0.0
            shrink = 1.0 - (1.0 - shrink) * trust
            correction_error = shrink * np.nan_to_num(fit.stderr if fit.stderr is not None else np.zeros(d))
        values = alpha * phi_cheap.mean(axis=1) + total / d + shrink * deviation
        cheap_error = alpha * combine_stderr(cheap_sampling, seed_stderr(phi_cheap))
        # the unshrunk part of the correction is the cheap level's bias, bounded by what was removed
        bias_bound = (1 - shrink) * np.abs(deviation) if n_full > 2 else np.full(d, np.nan)
        stderr = combine_stderr(correction_error, np.nan_to_num(cheap_error), bias_bound)
        used, cached = generation_counts(game, full.n_evaluated)
        cheap_used, cheap_cached = generation_counts(self.cheap, cheap.n_evaluated)
        n_seeds = full_ends.shape[1]
        info = dict(n_coalitions=full.n_evaluated, n_cheap_coalitions=cheap.n_evaluated, alpha=alpha,
                    shrinkage=shrink, cheap_exact=n_cheap == 2 ** d, cost_full=float(full.n_evaluated * n_seeds),
                    cost_cheap=float(cheap.n_evaluated * n_seeds * self.cheap_cost),
                    cost_total=float((full.n_evaluated + cheap.n_evaluated * self.cheap_cost) * n_seeds),
                    cheap_cost=self.cheap_cost, cheap_generations=cheap_used, cheap_cached=cheap_cached,
                    correlation=correlation, plan="cheap_exact" if n_cheap == 2 ** d else "cheap_sampled")
        return Explanation(
            method=self.name, features=feature_names(game, feature_names_), values=values,
            base_value=float(full_ends[0].mean()), full_value=float(full_ends[1].mean()), stderr=stderr,
            n_generations=used, n_cached=cached, info=info, coalitions=masks,
            settings=dict(method=self.name, budget=budget, seed=seed, cheap_cost=self.cheap_cost,
                          n_bootstrap=self.n_bootstrap))
