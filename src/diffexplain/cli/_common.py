"""Pieces shared by the subcommands: model loading, adapters, progress bars."""

from __future__ import annotations

import contextlib

import click


def build_adapter(model: str, steps, guidance, batch_size: int = 16):
    """Load ``--model`` and wrap it in a TextToImageAdapter with the shapes defaults."""
    from ..models import shapes
    from ..models.adapter import TextToImageAdapter
    from ..models.loading import is_shapes_pipeline, load_pipeline

    pipe = load_pipeline(model)
    vocabulary_check = None
    builtin = is_shapes_pipeline(pipe)
    if builtin:
        from ..world import check_vocabulary

        vocabulary_check = check_vocabulary
    if guidance is None:  # 1.5 was chosen for the shapes model only; other pipelines keep 4.0
        guidance = shapes.TEXT2IMAGE_GUIDANCE if builtin else shapes.DEFAULT_GUIDANCE
    return TextToImageAdapter(
        pipe, num_inference_steps=steps or shapes.DEFAULT_STEPS, guidance_scale=guidance,
        batch_size=batch_size, vocabulary_check=vocabulary_check)


@contextlib.contextmanager
def progress_bar(description: str):
    """Yield a callback(done, total) that drives a rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def usage_errors(function):
    """Turn ValueError / FileNotFoundError from the library into click usage errors (exit code 2)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError) as error:
            raise click.UsageError(str(error)) from error

    return wrapper
