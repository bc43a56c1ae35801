"""``diffexplain audit``: explain every prompt of a file, in process or on a Ray cluster, resumably."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import build_adapter, size_options, usage_errors
from .explain import explanation_options, settings_from


@click.command("audit")
@click.argument("prompts_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", default="shapes", show_default=True,
              help="a registered name ('shapes', ...) or a local diffusers pipeline directory")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="generate in this process, or on Ray actors (one pipeline each)")
@click.option("--workers", type=int, default=2, show_default=True, help="Ray actors")
@click.option("--address", default=None, help="a running Ray cluster's address (default: a local one for this run)")
@click.option("--gpus-per-worker", type=float, default=0.0, show_default=True)
@click.option("--cpus-per-worker", type=float, default=1.0, show_default=True)
@click.option("--embeddings-only", is_flag=True,
              help="keep embeddings, not images, in the cache (large runs; reports cannot show the images)")
@explanation_options
@size_options
@usage_errors
def command(prompts_file, model, executor, workers, address, gpus_per_worker, cpus_per_worker, embeddings_only,
            dry_run, yes, repair_cache, steps, guidance, out, height, width, pipeline_args, cache_path,
            **options) -> None:
    """Explain every prompt of PROMPTS_FILE (one per line; GROUP<TAB>prompt to group them) and write
    one explanation per prompt, summary.json and report.html under OUT. A re-run resumes."""
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} img/s" if task.speed else "- img/s")

    from ..executors import InProcessExecutor, RayExecutor, Work, measure, spec_of
    from ..explain.api import PromptExplainer
    from ..explain.audit import audit, plan, read_prompts
    from ..report.html import audit_report
    from ._common import confirm_start, prepare_output

    settings = settings_from(options)
    method = settings.method
    prompts = read_prompts(prompts_file)
    cache = prepare_output(out, cache_path, repair_cache, keep_images=not embeddings_only)
    adapter = build_adapter(model, steps, guidance, height=height, width=width, pipeline_args=pipeline_args)
    for _, prompt in prompts:
        adapter.words(prompt)  # every prompt valid before any work
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    run_on = InProcessExecutor() if executor == "local" else RayExecutor(
        spec_of(adapter, model), workers=workers, address=address, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    try:
        explainer = PromptExplainer(adapter, settings, cache=cache, executor=run_on)
        counts = plan(explainer, prompts, out)
        total = sum(counts)
        if dry_run:
            warm = Work.full(prompts[0][1], tuple(range(adapter.batch_size)))
            per_image = measure(run_on, adapter, warm)
            parallel = workers if executor == "ray" else 1
            for index, ((group, prompt), count) in enumerate(zip(prompts, counts)):
                console.print(f"{index:4d} {count:6d}  {group + ': ' if group else ''}{prompt}")
            console.print(f"{total} generations for {len(prompts)} prompts ({sum(c == 0 for c in counts)} need none); "
                          f"{per_image:.3f} s per image measured on one batch of {adapter.batch_size}, so about "
                          f"{total * per_image / parallel / 60:.1f} min on {parallel} worker(s)")
            return
        confirm_start(total, yes, " (--dry-run prints the plan)")
        columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), RateColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"{method} on {len(prompts)} prompts ({executor})", total=total)
            last = {"done": 0}

            def update(done: int, _total: int) -> None:  # per game call: done restarts at each call
                step = done - last["done"] if done >= last["done"] else done
                last["done"] = done
                progress.advance(task, step)

            def next_prompt(index, prompt, skipped):
                last["done"] = 0

            explainer.progress = update
            if settings.tolerance is not None:  # anytime: each prompt's rounds and its worst standard error
                explainer.on_round = lambda budget, worst, moved: progress.console.print(
                    f"  {budget} coalitions: worst standard error {worst:.1%}, largest change {moved:.1%} of the "
                    f"total (tolerance {settings.tolerance:.1%})")
            start = time.perf_counter()
            summary = audit(explainer, prompts, out, on_prompt=next_prompt)
    finally:
        run_on.close()
    audit_report(summary, out / "report.html")
    elapsed = time.perf_counter() - start
    console.print(f"{len(prompts)} prompts, {total} new generations in {elapsed:.0f} s")
    console.print("most influential: " + ", ".join(f"{w.word} {w.mean:+.3f}" for w in summary.most(8, 2)))
    console.print("least influential: " + ", ".join(f"{w.word} {w.mean:+.3f}" for w in summary.least(8, 2)))
    if summary.differences:
        a, b = summary.groups[:2]
        console.print(f"largest {a} - {b} differences: " +
                      ", ".join(f"{w} {d:+.3f}" for w, d in summary.differences[:8]))
    console.print(f"wrote {out}/summary.json, {out}/report.html and {len(prompts)} explanations under {out}/prompts")
