"""``diffexplain explain``: which words of a prompt drive the image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._common import (
    CONFIRM_ABOVE,
    build_adapter,
    confirm_start,
    prepare_output,
    progress_bar,
    size_options,
    usage_errors,
)

if TYPE_CHECKING:
    from ..protocols import Adapter


def _family_defaults(what: str, attribute: str, form: str) -> str:
    """Help text naming each family's default ``attribute`` (read from the families, not written here)."""
    from ..models.families import FAMILIES

    defaults = ", ".join(f"{f.title} {format(getattr(f, attribute), form)}" for f in FAMILIES.values())
    return f"{what} [the pipeline's diffexplain.json, else its family's: {defaults}]"


def explanation_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``explain``, ``edit`` and ``audit``: the ``ExplainSettings`` fields (choices
    and defaults read from the library's registries), sampler settings, cache and run control."""
    from ..explain.methods import METHODS
    from ..explain.settings import ExplainSettings
    from ..models.perturbations import PERTURBATIONS
    from ..names import EMBEDDERS, SIMILARITIES

    defaults = ExplainSettings()
    perturbations = " | ".join(f"{name}:TOKEN" if name == "replace" else name for name in PERTURBATIONS)
    options = [
        click.option("--method", type=click.Choice(list(METHODS)), default=defaults.method, show_default=True),
        click.option("--seeds", type=int, default=len(defaults.image_seeds), show_default=True,
                     help="image seeds per coalition (common random numbers): --seed .. --seed + N - 1"),
        click.option("--seed", type=int, default=defaults.seed, show_default=True, help="the first image seed"),
        click.option("--sampler-seed", type=int, default=defaults.sampler_seed, show_default=True,
                     help="seed of the explainer's own sampling (permutations, masks, bootstrap)"),
        click.option("--budget", type=int, default=None, help="coalitions to evaluate [method default]"),
        click.option("--embedder", type=click.Choice(list(EMBEDDERS)), default=defaults.embedder_name,
                     show_default=True),
        click.option("--embedder-path", default=None, help="local model directory for clip / dinov2"),
        click.option("--embedder-size", type=int, default=None,
                     help="efficientnet: side images are resized to [twice the image side, at most 224]"),
        click.option("--similarity", type=click.Choice(list(SIMILARITIES)), default=defaults.similarity,
                     show_default=True, help="wasserstein is SMILE's"),
        click.option("--perturbation", default=defaults.perturbation_spec, show_default=True,
                     help=perturbations),
        click.option("--fidelity", default="full", show_default=True,
                     help="full | auto | steps=K | size=S | model=DIR: a cheaper version of the model as a control "
                          "variate, corrected on few full generations (--budget counts full-generation "
                          "equivalents, default 2d)"),
        click.option("--tolerance", type=float, default=None,
                     help="sampled methods: add d coalitions a round until every standard error, or every "
                          "value's change since the last round, is below this fraction of the total attribution "
                          "(e.g. 0.2; --budget caps it)"),
        click.option("--steps", type=int, default=None,
                     help=_family_defaults("denoising steps", "num_inference_steps", "d")),
        click.option("--guidance", type=float, default=None,
                     help=_family_defaults("guidance scale", "guidance_scale", "g")),
        click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="SQLite generation cache [OUT/cache.sqlite]"),
        click.option("--repair-cache", is_flag=True,
                     help="if the cache file cannot be read, move it aside and start a new one with its readable rows"),
        click.option("--dry-run", is_flag=True,
                     help="print the generations the explanation needs (after the cache) and a time estimate; "
                          "generate nothing"),
        click.option("--yes", is_flag=True, help=f"start without asking, above {CONFIRM_ABOVE} generations"),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


SETTINGS_OPTIONS = ("method", "seeds", "seed", "sampler_seed", "budget", "embedder", "embedder_path", "embedder_size",
                    "similarity", "perturbation", "fidelity", "tolerance")


def settings_from(options: dict, **extra) -> Any:
    """Pop the ``ExplainSettings`` fields out of a command's options and build the settings (validated)."""
    from ..explain.settings import ExplainSettings

    return ExplainSettings(**{name: options.pop(name) for name in SETTINGS_OPTIONS}, **extra)


def _check_folder_is_free(out: Path, method: str, prompt: str) -> None:
    """A folder holds one explanation: refuse another method or prompt over it (re-running the same
    one resumes from the cache)."""
    import json

    existing = out / "explanation.json"
    if not existing.is_file():
        return
    try:
        data = json.loads(existing.read_text())
        held = (data.get("method"), data.get("metadata", {}).get("prompt"))
    except (ValueError, AttributeError):
        held = (None, None)
    if held != (method, prompt):
        raise ValueError(f"--out {str(out)!r} already holds a {held[0]} explanation of {held[1]!r}; write this one "
                         f"to another folder (images are shared through --cache {out / 'cache.sqlite'})")


def run_explanation(adapter: Adapter, prompt: str, settings: Any, *, cache: Any, out: Path,
                    sections: Sequence[Any] = (), dry_run: bool = False,
                    yes: bool = False) -> Any:
    """Plan (generations after the cache and a measured time estimate, printed before any work; a
    large job asks first), explain, save ``explanation.json`` / ``.safetensors`` and write
    ``report.html`` from the explanation itself (its coalitions' images come back from the cache)."""
    import dataclasses
    import time

    import numpy as np
    from rich.console import Console

    from ..executors import InProcessExecutor, Work, measure
    from ..explain.api import PromptExplainer
    from ..explain.audit import plan
    from ..report.html import explanation_report

    adapter.words(prompt)
    method = settings.method
    _check_folder_is_free(out, method, prompt)
    console = Console()
    explainer = PromptExplainer(adapter, settings, cache=cache)
    seeds = settings.image_seeds
    if len(seeds) <= 16:
        planned = plan(explainer, [(None, prompt)], out / ".plan-none")[0]
        bound = "at least " if settings.tolerance is not None else ""  # the first round; more as needed
    else:  # the coalitions drawn do not depend on the seeds: count them once, assume none cached
        one = PromptExplainer(adapter, dataclasses.replace(settings, seeds=seeds[:1], embedder="pixel",
                                                           embedder_size=None), cache=cache)
        planned = plan(one, [(None, prompt)], out / ".plan-none")[0] * len(seeds)
        bound = "up to "
    per_image = measure(InProcessExecutor(), adapter, Work.full(prompt, (seeds[0],))) if planned else 0.0
    console.print(f"{method} on {prompt!r}: {bound}{planned} new generation(s) planned "
                  f"({len(seeds)} seed(s) a coalition), about {planned * per_image / 60:.1f} min at "
                  f"{per_image:.2f} s per image measured here")
    if dry_run:
        return None
    confirm_start(planned, yes, ", or lower --seeds / --budget")
    if settings.tolerance is not None:
        explainer.on_round = lambda budget, worst, moved: console.print(
            f"  {budget} coalitions: worst standard error {worst:.1%}, largest change {moved:.1%} of the total "
            f"(tolerance {settings.tolerance:.1%})")
    with progress_bar(f"generating ({method})") as update:
        explainer.progress = update
        start = time.perf_counter()
        explanation = explainer.explain(prompt)
    explanation.save(out)
    explanation_report(explanation, out / "report.html", cache=cache,
                       extra_sections=[s(explanation) if callable(s) else s for s in sections])
    console.print(f"[bold]{method}[/] on {prompt!r}: {explanation.n_generations} images "
                  f"({explanation.n_cached} from the cache) in {time.perf_counter() - start:.0f} s")
    for line in explanation.metadata.get("encoders_read", ()):
        if "every word" not in line:
            console.print(f"  note: {line}")
    bars = explanation.stderr is not None and bool(np.isfinite(explanation.stderr).any())
    for i in np.argsort(-explanation.values):
        stderr = explanation.stderr
        se = f" ± {stderr[i]:.4f}" if bars and stderr is not None and np.isfinite(stderr[i]) else ""
        p = f"  p={explanation.pvalues[i]:.3f}" if explanation.pvalues is not None else ""
        console.print(f"  {explanation.features[i]:>12s} {explanation.values[i]:+.4f}{se}{p}")
    if not bars:
        console.print("  (no error bars: with one seed and every coalition evaluated there is no spread to measure; "
                      "use --seeds 2 or more)")
    console.print(f"wrote {out}/explanation.json and {out}/report.html")
    return explanation


@click.command("explain")
@click.argument("prompt")
@click.option("--model", default="shapes", show_default=True,
              help="a registered name ('shapes', ...) or a local diffusers pipeline directory")
@click.option("--attention", is_flag=True, help="also record cross-attention on the full prompt and add its views")
@explanation_options
@size_options
@usage_errors
def command(prompt, model, attention, steps, guidance, out, height, width, pipeline_args, **options) -> None:
    """Attribute the image of PROMPT to its words; writes explanation.json and report.html under OUT."""
    cache = prepare_output(out, options.pop("cache_path"), options.pop("repair_cache"))
    settings = settings_from(options)
    adapter = build_adapter(model, steps, guidance, height=height, width=width, pipeline_args=pipeline_args)

    def attention_views(explanation):
        from ..attention import record_prompt
        from ..report.html import attention_section

        image, maps = record_prompt(adapter, prompt, explanation.settings["seeds"][0])
        maps.save(out)
        return attention_section(maps, image, views=("time", "layer"))

    run_explanation(adapter, prompt, settings, cache=cache, out=out,
                    sections=[attention_views] if attention else [], **options)
