"""``diffexplain explain``: which words of a prompt drive the image."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import build_adapter, progress_bar, size_options, usage_errors

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
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the explainer's own sampling"),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def run_explanation(adapter, prompt: str, *, method, seeds, budget, embedder, embedder_path, similarity,
                    perturbation, cache_path, seed, out: Path, embedder_size=None, reference: str = "full",
                    sections=()):
    """Explain, save ``explanation.json`` / ``.safetensors`` and write ``report.html`` from the
    explanation itself (its coalitions' images come back from the cache: no new generations)."""
    import numpy as np
    from rich.console import Console

    from ..cache import GenerationCache
    from ..embed import DEFAULT_SIMILARITY
    from ..explain.api import PromptExplainer
    from ..report.html import explanation_report

    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(f"generating ({method})") as update:
        explainer = PromptExplainer(adapter, embedder=embedder, embedder_path=embedder_path,
                                    embedder_size=embedder_size, similarity=similarity or DEFAULT_SIMILARITY,
                                    perturbation=perturbation, seeds=seeds, reference=reference,
                                    cache=GenerationCache(cache_path or out / "cache.sqlite"), progress=update)
        explanation = explainer.explain(prompt, method=method, budget=budget, seed=seed)
    explanation.save(out)
    explanation_report(explanation, out / "report.html",
                       extra_sections=[s(explanation) if callable(s) else s for s in sections])
    console = Console()
    console.print(f"[bold]{method}[/] on {prompt!r}: {explanation.n_generations} images "
                  f"({explanation.n_cached} from the cache)")
    for i in np.argsort(-explanation.values):
        se = explanation.stderr[i] if explanation.stderr is not None else float("nan")
        p = f"  p={explanation.pvalues[i]:.3f}" if explanation.pvalues is not None else ""
        console.print(f"  {explanation.features[i]:>12s} {explanation.values[i]:+.4f} ± {se:.4f}{p}")
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
    adapter = build_adapter(model, steps, guidance, height=height, width=width, pipeline_args=pipeline_args)

    def attention_views(explanation):
        from ..report.html import attention_section
        from ..attention import record_prompt

        image, maps = record_prompt(adapter, prompt, explanation.settings["seeds"][0])
        maps.save(out)
        return attention_section(maps, image, views=("time", "layer"))

    run_explanation(adapter, prompt, method=method, out=out, sections=[attention_views] if attention else [],
                    **options)
