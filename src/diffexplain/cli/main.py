"""``diffexplain`` command line: one module per subcommand, built on the public API only."""

from __future__ import annotations

import os

import click

# Nothing may reach the network: set before diffusers / transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# OpenMP threads that spin-wait between parallel regions make every command 15-40x slower when any
# other process wants the cores (benchmarks.threads); passive waiting costs nothing when idle. Read
# by the OpenMP runtime when torch loads, so it is set here, unless the user chose a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(package_name="diffexplain")
def cli() -> None:
    """Explain diffusion image models: which words drive the image, and how much to trust it."""


COMMANDS_GROUP = "diffexplain.commands"  # entry points of plugins: a click command each (shapes: ``demo``)


def _register() -> None:
    from importlib import metadata

    from . import attention, audit, edit, env, explain, generate, i2am, serve
    from ._runtime import with_runtime_options

    for module in (generate, explain, edit, attention, i2am, audit, serve, env):
        cli.add_command(with_runtime_options(module.command))
    for entry_point in metadata.entry_points(group=COMMANDS_GROUP):
        cli.add_command(with_runtime_options(entry_point.load()), entry_point.name)


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
