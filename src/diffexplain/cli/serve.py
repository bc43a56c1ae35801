"""``diffexplain serve``: the local web app."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import usage_errors


@click.command("serve")
@click.option("--model", "models", multiple=True, default=("shapes",), show_default=True,
              help="a registered name or a local pipeline directory the app offers; repeatable")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=Path("out/serve"),
              show_default=True, help="the folder runs are written to (and past runs are read from)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; anything but localhost makes the app reachable from the network")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--audit", "audits", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="an audit folder (diffexplain audit --out) to browse; repeatable")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="generate text-to-image runs in the app's worker thread, or on Ray actors")
@click.option("--workers", type=int, default=2, show_default=True, help="Ray actors per model")
@click.option("--address", default=None, help="a running Ray cluster's address (default: a local one)")
@usage_errors
def command(models: tuple[str, ...], results: Path, host: str, port: int, audits: tuple[Path, ...], executor: str,
            workers: int, address: str | None) -> None:
    """Explore explanations in a browser: type a prompt, watch the generations, click a word."""
    import uvicorn

    from ..serve.app import create_app
    from ._common import writable_folder

    writable_folder(results, "--results")
    offered = {Path(m).name if Path(m).is_dir() else m: m for m in models}
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: anyone who can reach this address can run models and read the "
                   "results folder", err=True)
    browsed = {}
    for folder in audits:
        if not (folder / "summary.json").is_file():
            raise click.UsageError(f"--audit {str(folder)!r}: no summary.json there (an audit's --out folder)")
        browsed[folder.name if folder.name not in browsed else str(folder)] = folder
    ray = dict(workers=workers, address=address) if executor == "ray" else None
    app = create_app(offered, results, audits=browsed, ray=ray)
    click.echo(f"diffexplain serve: http://{host}:{port}/ ({', '.join(sorted(offered))}; runs in {results})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
