"""``diffexplain`` command line: one module per subcommand, built on the public API only."""

from __future__ import annotations

import os

import click

# Nothing may reach the network: set before diffusers / transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(package_name="diffexplain")
def cli() -> None:
    """Explain diffusion image models: which words drive the image, and how much to trust it."""


COMMANDS_GROUP = "diffexplain.commands"  # entry points of plugins: a click command each (shapes: ``demo``)


def _register() -> None:
    from importlib import metadata

    from . import attention, audit, edit, env, explain, generate, i2am

    for module in (generate, explain, edit, attention, i2am, audit, env):
        cli.add_command(module.command)
    for entry_point in metadata.entry_points(group=COMMANDS_GROUP):
        cli.add_command(entry_point.load(), entry_point.name)


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
