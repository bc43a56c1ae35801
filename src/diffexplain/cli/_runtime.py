"""Options every command takes: ``--threads`` and ``--verbose``, applied before the command runs."""

from __future__ import annotations

import functools
import logging
import warnings

import click

# libraries whose warnings and progress bars say nothing a diffexplain user can act on ("install
# accelerate", deprecations inside diffusers, torchvision fallbacks); --verbose shows them
QUIET_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "accelerate", "torch", "efficientnet_lite_pytorch")
QUIET_MODULES = r"(diffusers|transformers|huggingface_hub|torch|torchvision|efficientnet_lite_pytorch|ray)(\.|$)"


def configure(threads: int | None, verbose: bool) -> None:
    """Set torch's thread count (``threads``) and, unless ``verbose``, silence third-party chatter."""
    import os

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for Ray workers and subprocesses
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)
    warnings.filterwarnings("ignore", message=r".*accelerate.*")
    try:  # their own verbosity switches, when the libraries are importable
        import diffusers.utils.logging as diffusers_logging
        import transformers.utils.logging as transformers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def with_runtime_options(command: click.Command) -> click.Command:
    """Add ``--threads N`` and ``--verbose`` to ``command`` and apply them before its callback."""
    command.params.append(click.Option(
        ["--threads"], type=click.IntRange(min=1), default=None,
        help="torch CPU threads [all cores; OpenMP threads wait passively unless OMP_WAIT_POLICY is set]. "
             "Recorded with every generation: a cache entry made with another count is not reused"))
    command.params.append(click.Option(["--verbose"], is_flag=True,
                                       help="show third-party warnings and progress bars"))
    callback = command.callback
    if callback is None:
        raise ValueError(f"command {command.name!r} has no callback to wrap")

    @functools.wraps(callback)
    def run(*args, threads: int | None = None, verbose: bool = False, **kwargs):
        configure(threads, verbose)
        return callback(*args, **kwargs)

    command.callback = run
    return command
