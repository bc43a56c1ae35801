"""``PromptExplainer``: which words of a prompt drive the image, by any perturbation method.

One object holds what every explanation of a model shares (the adapter, the ``ExplainSettings``,
the embedder built from them once, the generation cache); ``explain(prompt)`` builds the prompt's
game and returns a plain-data ``Explanation`` whose coalitions' images are read back from the
cache by key. ``explain_prompt`` is the one-call form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

from ..cache import GenerationCache
from ..embed import make_embedder
from ..embed.embedders import Embedder
from ..protocols import Adapter, Cache, Executor
from ..types import Explanation
from .methods import METHODS, default_budget
from .multifidelity import Fidelity, MultiFidelityShapley, cheap_adapter, fidelity_from, stated_cost
from .prompt_game import PromptGame
from .settings import ExplainSettings


def _versions() -> dict[str, str]:
    out = {}
    for name in ("diffexplain", "torch", "diffusers", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def build_embedder(settings: ExplainSettings, adapter: Adapter) -> Embedder:
    """The settings' embedder (an object is used as is; a name is built for the adapter's image
    side: EfficientNet-Lite0 at ``efficientnet_size`` of it, 128 px for the 64-px shapes models)."""
    if not isinstance(settings.embedder, str):
        return settings.embedder
    return make_embedder(settings.embedder, pipe=adapter.pipe, path=settings.embedder_path,
                         image_size=settings.embedder_size, image_side=max(adapter.height, adapter.width))


class PromptExplainer:
    """Explanations of one model's prompts, sharing settings, an embedder and a generation cache.

    Args:
        adapter: a ``TextToImageAdapter`` (or ``EditAdapter``) over the user's pipeline.
        settings: the ``ExplainSettings`` (default: ``ExplainSettings()``).
        cache: generation cache (default: a fresh in-memory one); explanations sharing it reuse images.
        progress: optional callable(done, total) called as images are generated.
        executor: where generations run (``executors.InProcessExecutor``, the default, or
            ``executors.RayExecutor``); the images, hence the values, are the same.
        **changes: ``ExplainSettings`` fields over ``settings`` (``PromptExplainer(adapter, seeds=1)``).
    """

    def __init__(self, adapter: Adapter, settings: ExplainSettings | None = None, *,
                 cache: Cache | None = None, progress: Callable[[int, int], None] | None = None,
                 executor: Executor | None = None, **changes: Any):
        unknown = sorted(set(changes) - set(ExplainSettings.__dataclass_fields__))
        if unknown:
            raise TypeError(f"PromptExplainer got unknown settings {unknown}; the fields are "
                            f"{sorted(ExplainSettings.__dataclass_fields__)}")
        self.adapter = adapter
        base = settings if settings is not None else ExplainSettings()
        self.settings = base.replace(**changes) if changes else base  # None: keep the setting
        self.embedder = build_embedder(self.settings, adapter)
        self.cache: Cache = cache if cache is not None else GenerationCache()
        self.progress = progress
        self.executor = executor
        # anytime rounds: (budget, worst standard error, largest move since the last round), both relative
        self.on_round: Callable[[int, float, float], None] | None = None

    def game(self, prompt: str, settings: ExplainSettings | None = None) -> PromptGame:
        """The cooperative game over the words of ``prompt`` (validated by the adapter)."""
        return PromptGame(self.adapter, prompt, settings or self.settings, embedder=self.embedder, cache=self.cache,
                          progress=self.progress, executor=self.executor)

    def explain(self, prompt: str, *, method: str | None = None, budget: int | None = None,
                sampler_seed: int | None = None, **explainer_options: Any) -> Explanation:
        """Attribute the image of ``prompt`` to its words.

        Args:
            prompt: the text; its whitespace-separated words are the features.
            method, budget, sampler_seed: override the settings' for this prompt (the image seeds
                are the explainer's: every prompt of an audit shares them).
            explainer_options: passed to the explainer class (``kernel_width``, ``surrogate``...).

        Returns:
            An ``Explanation``: plain data, with the coalitions it evaluated, their exact
            conditionings and cache keys (``Explanation.images(cache)`` reads their images).
        """
        if "seed" in explainer_options:
            raise TypeError("explain() takes sampler_seed= (the explainer's sampling); image seeds are settings "
                            "(seeds=, seed=)")
        settings = self.settings.replace(method=method, budget=budget, sampler_seed=sampler_seed)
        game = self.game(prompt, settings)
        fidelity = fidelity_from(settings.fidelity)
        if not fidelity.is_full:
            result = self._multifidelity(game, prompt, settings, fidelity, explainer_options)
        elif settings.tolerance is not None:
            result = self._anytime(game, settings, explainer_options)
        else:
            explainer = METHODS[settings.method](**explainer_options)
            budget = default_budget(settings.method, game.n_players) if settings.budget is None else settings.budget
            result = explainer.explain(game, budget=budget, seed=settings.sampler_seed)
        recorded = dict(result.settings, **settings.describe(), **self.adapter.settings())
        recorded["embedder"] = self.embedder.name  # the built one's ("efficientnet-lite0-128"): it keys the cache
        recorded.pop("seed", None)  # the explainer's name for the sampler seed; "seeds" are the image seeds
        meta = dict(prompt=prompt, model_fingerprint=self.adapter.fingerprint, versions=_versions())
        coverage = getattr(self.adapter, "coverage", None)
        if coverage is not None:  # which words each text encoder read ("CLIP-L (pooled) saw words 1-75 of 100")
            meta["encoders_read"] = coverage(prompt)
        texts = keys = None
        if result.coalitions is not None:
            texts = tuple(game.conditioning(m) for m in result.coalitions)
            keys = tuple(tuple(row) for row in game.keys(result.coalitions))
        return Explanation(**{**result.__dict__, "settings": recorded, "metadata": meta, "coalition_texts": texts,
                              "coalition_keys": keys})

    def _multifidelity(self, game: PromptGame, prompt: str, settings: ExplainSettings, fidelity: Fidelity,
                       options: dict[str, Any]) -> Explanation:
        """Multi-fidelity KernelSHAP (``multifidelity.MultiFidelityShapley``): the cheap level's game
        shares the cache (its images are keyed by its own settings); its cost per image is measured
        against the full level's on this run when both generated, else stated (the ratio of steps x pixels x
        denoiser parameters)."""
        cheap = cheap_adapter(self.adapter, fidelity)
        cheap_game = PromptGame(cheap, prompt, settings, embedder=self.embedder, cache=self.cache,
                                progress=self.progress, executor=self.executor)
        stated = stated_cost(self.adapter, cheap)
        d = game.n_players
        budget = 2 * d if settings.budget is None else settings.budget
        result = MultiFidelityShapley(cheap_game, cheap_cost=stated, **options).explain(
            game, budget=budget, seed=settings.sampler_seed)
        info = dict(result.info, fidelity=fidelity.spec, cheap_settings=cheap.settings(), cost_ratio_stated=stated)
        if game.generated and cheap_game.generated:  # seconds per new image, measured on this run
            ratio = (cheap_game.generation_seconds / cheap_game.generated) / (game.generation_seconds / game.generated)
            info.update(cost_ratio_measured=float(ratio),
                        cost_total_measured=float(info["cost_full"] + info["cost_cheap"] / stated * ratio))
        return dataclasses.replace(result, info=info)

    def _anytime(self, game: PromptGame, settings: ExplainSettings, options: dict[str, Any]) -> Explanation:
        """A sampled method at growing budgets (KernelSHAP and permutation 2d + 2, LIME / SMILE d + 2,
        then d more coalitions a round) until every standard error is below ``tolerance`` times the
        values' L1 norm, or no value moved by more than that since the previous round (the ranking is
        stable under the tolerance), or the budget cap (the settings' budget, else 64 d) is reached.
        A first round that sampled its coalitions never stops the run. Coalitions already
        generated come from the cache, so a round costs only its new coalitions; the result counts the
        images of every round (``n_generations``: the coalitions of all rounds x seeds)."""
        assert settings.tolerance is not None
        d = game.n_players
        cap = min(settings.budget or 64 * d, 2 ** d if settings.method in ("kernelshap", "lime", "smile")
                  else 64 * d)
        step = max(d, 1)
        # KernelSHAP's and permutation's first round evaluates sizes 1 and d - 1 (exact for games of order <= 2)
        first = {"permutation": 2 * d + 2, "kernelshap": 2 * d + 2}.get(settings.method, d + 2)
        budget = min(cap, first)
        rounds: list[dict[str, Any]] = []
        previous = None
        asked: set[bytes] = set()  # every coalition of every round
        while True:
            result = METHODS[settings.method](**options).explain(game, budget=budget, seed=settings.sampler_seed)
            if result.coalitions is not None:
                asked.update(row.tobytes() for row in np.asarray(result.coalitions, dtype=bool))
            scale = float(np.abs(result.values).sum()) or 1.0
            stderr = np.nan_to_num(result.stderr if result.stderr is not None else np.zeros(d), nan=np.inf)
            worst = float(stderr.max()) / scale if d else 0.0
            moved = float("inf") if previous is None else float(np.abs(result.values - previous).max()) / scale
            rounds.append(dict(budget=budget, worst_stderr=worst, moved=moved))
            if self.on_round is not None:
                self.on_round(budget, worst, moved)
            # a first round that sampled coalitions does not stop: its bootstrap error, from so few, is not
            # to be trusted; one that enumerated its coalitions has no sampling error left, only the seeds'
            trusted = len(rounds) >= 2 or result.info.get("n_sampled_coalitions") == 0
            reached = trusted and (worst <= settings.tolerance or moved <= settings.tolerance)
            if reached or budget >= cap:
                break
            previous = result.values
            budget = min(cap, budget + step)
        images = len(asked) * len(settings.image_seeds) if asked else result.n_generations
        return dataclasses.replace(result, n_generations=images, info=dict(
            result.info, tolerance=settings.tolerance, rounds=rounds, tolerance_reached=reached,
            n_coalitions_all_rounds=len(asked)))


def explain_prompt(adapter: Adapter, prompt: str, settings: ExplainSettings | None = None, *,
                   cache: Cache | None = None, progress: Callable[[int, int], None] | None = None,
                   executor: Executor | None = None, **changes: Any) -> Explanation:
    """``PromptExplainer(adapter, settings).explain(prompt)`` in one call; keyword ``changes`` are
    ``ExplainSettings`` fields (``method="shapley", seeds=1``) or explainer options
    (``kernel_width=...``)."""
    fields = set(ExplainSettings.__dataclass_fields__)
    setting_changes = {k: v for k, v in changes.items() if k in fields}
    options = {k: v for k, v in changes.items() if k not in fields}
    explainer = PromptExplainer(adapter, settings, cache=cache, progress=progress, executor=executor,
                                **setting_changes)
    return explainer.explain(prompt, **options)
