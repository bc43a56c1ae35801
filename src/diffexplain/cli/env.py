"""``diffexplain env``: versions and machine facts for bug reports."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import click

_PACKAGES = ("diffexplain", "diffexplain-shapes", "torch", "diffusers", "transformers", "tokenizers", "safetensors",
             "numpy", "scipy", "scikit-learn", "scikit-image", "pillow", "click", "rich")


def environment() -> dict[str, str]:
    """Versions of Python, the platform and every dependency that shapes results."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    import torch

    info["torch threads"] = str(torch.get_num_threads())
    info["cuda available"] = str(torch.cuda.is_available())
    from ..models.loading import registered_pipelines

    info["registered pipelines"] = ", ".join(
        f"{name}: {'present' if (Path(folder) / 'model_index.json').is_file() else 'missing'}"
        for name, folder in registered_pipelines().items()) or "none"
    return info


@click.command("env")
def command() -> None:
    """Print versions for bug reports."""
    for key, value in environment().items():
        click.echo(f"- {key}: {value}")
