"""``diffexplain explain``: which words of a prompt drive the image."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import CONFIRM_ABOVE, build_adapter, confirm_start, prepare_output, progress_bar, size_options, \
    usage_errors

METHOD = click.option("--method", type=click.Choice(["shapley", "permutation", "kernelshap", "lime", "smile"]),
                      default="kernelshap", show_default=True)


def explanation_options(function):
    """Options shared by ``explain`` and ``edit``."""
    options = [
        click.option("--seeds", type=int, default=2, show_default=True,
                     help="seeds per coalition (common random numbers)"),
        click.option("--budget", type=int, default=None, help="coalitions to evaluate [method default]"),
        click.option("--embedder", default="efficientnet", show_default=True,
                     help="efficientnet | pixel | latent | clip | dinov2"),
        click.option("--embedder-path", default=None, help="local model directory for clip / dinov2"),
        click.option("--embedder-size", type=int, default=None,
                     help="efficientnet: side images are resized to [twice the image side, at most 224: "
                          "128 for the shapes models]"),
        click.option("--similarity", default=None,
                     help="neg_l2 | cosine | wasserstein (SMILE paper) [neg_l2]"),
        click.option("--perturbation", type=click.Choice(["drop", "empty_embedding"]), default="drop",
                     show_default=True),
        click.option("--steps", type=int, default=None,
                     help="denoising steps [the pipeline's diffexplain.json, else 20]"),
        click.option("--guidance", type=float, default=None,
                     help="guidance scale [the pipeline's diffexplain.json (shapes text2image 1.5, editing "
                          "models 4.0), else 7.5]"),
        click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="SQLite generation cache [OUT/cache.sqlite]"),
        click.option("--repair-cache", is_flag=True,
                     help="if the cache file cannot be read, move it aside and start a new one with its readable rows"),
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the explainer's own sampling"),
        click.option("--dry-run", is_flag=True,
                     help="print the generations the explanation needs (after the cache) and a time estimate; "
                          "generate nothing"),
        click.option("--yes", is_flag=True, help=f"start without asking, above {CONFIRM_ABOVE} generations"),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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


def run_explanation(adapter, prompt: str, *, method, seeds, budget, embedder, embedder_path, similarity,
                    perturbation, cache, seed, out: Path, embedder_size=None, reference: str = "full",
                    sections=(), dry_run: bool = False, yes: bool = False):
    """Plan (generations after the cache and a measured time estimate, printed before any work; a
    large job asks first), explain, save ``explanation.json`` / ``.safetensors`` and write
    ``report.html`` from the explanation itself (its coalitions' images come back from the cache)."""
    import time

    import numpy as np
    from rich.console import Console

    from ..embed import DEFAULT_SIMILARITY
    from ..executors import InProcessExecutor, Work, measure
    from ..explain.api import PromptExplainer
    from ..explain.audit import plan
    from ..report.html import explanation_report

    adapter.words(prompt)
    _check_folder_is_free(out, method, prompt)
    console = Console()
    explainer = PromptExplainer(adapter, embedder=embedder, embedder_path=embedder_path,
                                embedder_size=embedder_size, similarity=similarity or DEFAULT_SIMILARITY,
                                perturbation=perturbation, seeds=seeds, reference=reference, cache=cache)
    if len(explainer.seeds) <= 16:
        planned = plan(explainer, [(None, prompt)], out / ".plan-none", method=method, budget=budget, seed=seed)[0]
        bound = ""
    else:  # the coalitions drawn do not depend on the seeds: count them once, assume none cached
        one = PromptExplainer(adapter, embedder="pixel", perturbation=perturbation, seeds=explainer.seeds[:1],
                              reference=reference, cache=cache)
        planned = plan(one, [(None, prompt)], out / ".plan-none", method=method, budget=budget,
                       seed=seed)[0] * len(explainer.seeds)
        bound = "up to "
    per_image = measure(InProcessExecutor(), adapter, Work(seeds=(0,), texts=(prompt,))) if planned else 0.0
    console.print(f"{method} on {prompt!r}: {bound}{planned} new generation(s) planned "
                  f"({len(explainer.seeds)} seed(s) a coalition), about {planned * per_image / 60:.1f} min at "
                  f"{per_image:.2f} s per image measured here")
    if dry_run:
        return None
    confirm_start(planned, yes, ", or lower --seeds / --budget")
    with progress_bar(f"generating ({method})") as update:
        explainer.progress = update
        start = time.perf_counter()
        explanation = explainer.explain(prompt, method=method, budget=budget, seed=seed)
    explanation.save(out)
    explanation_report(explanation, out / "report.html",
                       extra_sections=[s(explanation) if callable(s) else s for s in sections])
    console.print(f"[bold]{method}[/] on {prompt!r}: {explanation.n_generations} images "
                  f"({explanation.n_cached} from the cache) in {time.perf_counter() - start:.0f} s")
    for line in explanation.metadata.get("encoders_read", ()):
        if "every word" not in line:
            console.print(f"  note: {line}")
    bars = explanation.stderr is not None and bool(np.isfinite(explanation.stderr).any())
    for i in np.argsort(-explanation.values):
        se = f" ± {explanation.stderr[i]:.4f}" if bars and np.isfinite(explanation.stderr[i]) else ""
        p = f"  p={explanation.pvalues[i]:.3f}" if explanation.pvalues is not None else ""
        console.print(f"  {explanation.features[i]:>12s} {explanation.values[i]:+.4f}{se}{p}")
    if not bars:
        console.print("  (no error bars: with one seed and every coalition evaluated there is no spread to measure; "
                      "use --seeds 2 or more)")
    console.print(f"wrote {out}/explanation.json and {out}/report.html")
    return explanation


@click.command("explain")
@click.argument("prompt")
@METHOD
@click.option("--model", default="shapes", show_default=True,
              help="a registered name ('shapes', ...) or a local diffusers pipeline directory")
@click.option("--attention", is_flag=True, help="also record cross-attention on the full prompt and add its views")
@explanation_options
@size_options
@usage_errors
def command(prompt, method, model, attention, steps, guidance, out, height, width, pipeline_args, **options) -> None:
    """Attribute the image of PROMPT to its words; writes explanation.json and report.html under OUT."""
    options["cache"] = prepare_output(out, options.pop("cache_path"), options.pop("repair_cache"))
    adapter = build_adapter(model, steps, guidance, height=height, width=width, pipeline_args=pipeline_args)

    def attention_views(explanation):
        from ..report.html import attention_section
        from ..attention import record_prompt

        image, maps = record_prompt(adapter, prompt, explanation.settings["seeds"][0])
        maps.save(out)
        return attention_section(maps, image, views=("time", "layer"))

    run_explanation(adapter, prompt, method=method, out=out, sections=[attention_views] if attention else [],
                    **options)
