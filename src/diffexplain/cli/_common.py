"""Pieces shared by the subcommands: model loading, adapters, progress bars."""

from __future__ import annotations

import contextlib

import click


def build_adapter(model: str, steps, guidance, batch_size: int = 16, height=None, width=None):
    """Load ``--model`` and wrap it in a TextToImageAdapter with the pipeline's own defaults."""
    from ..models.adapter import TextToImageAdapter
    from ..models.loading import load_pipeline

    return TextToImageAdapter(load_pipeline(model), num_inference_steps=steps, guidance_scale=guidance,
                              batch_size=batch_size, height=height, width=width)


def size_options(function):
    """--height / --width of the generated images (default: the pipeline's own size)."""
    function = click.option("--width", type=int, default=None, help="image width [the pipeline's]")(function)
    return click.option("--height", type=int, default=None, help="image height [the pipeline's]")(function)


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
