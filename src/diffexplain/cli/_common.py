"""Pieces shared by the subcommands: model loading, adapters, progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click


def build_adapter(model: str, steps: int | None, guidance: float | None, batch_size: int = 16,
                  height: int | None = None, width: int | None = None, pipeline_args: Sequence[str] = ()) -> Any:
    """Load ``--model`` and wrap it in a TextToImageAdapter with the pipeline's own defaults."""
    from ..models.adapter import TextToImageAdapter
    from ..models.loading import load_pipeline

    return TextToImageAdapter(load_pipeline(model), num_inference_steps=steps, guidance_scale=guidance,
                              batch_size=batch_size, height=height, width=width,
                              pipeline_kwargs=parse_pipeline_args(pipeline_args))


def writable_folder(path: str | Path, argument: str) -> Path:
    """Create the folder ``path`` now, before any model loads; ValueError naming ``argument`` when it
    cannot be (under a regular file, a read-only or virtual file system such as /proc)."""
    import tempfile
    from pathlib import Path

    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{argument} {str(path)!r} is under {str(parent)!r}, which is a file, not a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of its own name: runs sharing the folder must not remove each other's
        with tempfile.NamedTemporaryFile(dir=path, prefix=".diffexplain-write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"{argument} {str(path)!r} cannot be written: {error.strerror or error}") from error
    return path


def open_cache(path: str | Path, argument: str = "--cache", *, repair: bool = False, keep_images: bool = True) -> Any:
    """The generation cache at ``path`` (its folder created and checked first); ``repair`` moves an
    unreadable file aside and keeps its readable rows."""
    from ..cache import CacheError, GenerationCache

    path = Path(path)
    writable_folder(path.parent, argument)
    if path.is_dir():
        raise ValueError(f"{argument} {str(path)!r} is a folder; give the cache file's path")
    try:
        return GenerationCache(path, keep_images=keep_images)
    except CacheError:
        if not repair:
            raise
    cache, aside, kept = GenerationCache.repair(path)
    click.echo(f"moved the unreadable cache to {aside}; kept {kept} image(s) in a new {path}", err=True)
    return cache


CONFIRM_ABOVE = 2000  # generations: a larger job asks before it starts (--yes skips the question)


def confirm_start(planned: int, yes: bool, hint: str) -> None:
    """Above ``CONFIRM_ABOVE`` generations, ask before starting (unless ``yes``); without a terminal
    to ask on, stop with a one-line error that says ``hint``."""
    if planned <= CONFIRM_ABOVE or yes:
        return
    import sys

    if not sys.stdin.isatty():
        raise ValueError(f"{planned} generations is above {CONFIRM_ABOVE}: pass --yes to start{hint}")
    click.confirm(f"start {planned} generations?", abort=True)


def prepare_output(out: str | Path, cache_path: str | Path | None, repair_cache: bool, *,
                   keep_images: bool = True) -> Any:
    """Check ``--out`` and open ``--cache`` (default ``OUT/cache.sqlite``) before any model loads:
    one-line errors for a path under a file, an unwritable folder or an unreadable cache."""
    from pathlib import Path

    writable_folder(out, "--out")
    return open_cache(Path(cache_path) if cache_path else Path(out) / "cache.sqlite", repair=repair_cache,
                      keep_images=keep_images)


def size_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--height / --width of the generated images (default: the pipeline's own size) and --pipeline-arg."""
    function = pipeline_arg_option(function)
    function = click.option("--width", type=int, default=None, help="image width [the pipeline's]")(function)
    return click.option("--height", type=int, default=None, help="image height [the pipeline's]")(function)


def pipeline_arg_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--pipeline-arg KEY=VALUE, repeatable: extra keyword arguments of every pipeline call."""
    return click.option("--pipeline-arg", "pipeline_args", multiple=True, metavar="KEY=VALUE",
                        help="extra keyword argument of the pipeline call, VALUE read as JSON when it parses "
                             "(e.g. use_resolution_binning=false, max_sequence_length=128); repeatable")(function)


def parse_pipeline_args(items: Sequence[str]) -> dict:
    """``("a=1", "b=false", "c=text")`` -> ``{"a": 1, "b": False, "c": "text"}``."""
    import json

    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--pipeline-arg must be KEY=VALUE with KEY a keyword name, got {item!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a callback(done, total) that drives a rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def usage_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ValueError / FileNotFoundError from the library into click usage errors (exit code 2)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError) as error:
            raise click.UsageError(str(error)) from error

    return wrapper
