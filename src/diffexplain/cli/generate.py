"""``diffexplain generate``: one image from a prompt, seeded."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import build_adapter, size_options, usage_errors


@click.command("generate")
@click.argument("prompt")
@click.option("--model", default="shapes", show_default=True,
              help="a registered name ('shapes', ...) or a local diffusers pipeline directory")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="denoising steps [the pipeline's diffexplain.json, else 20]")
@click.option("--guidance", type=float, default=None,
              help="classifier-free guidance scale [the pipeline's diffexplain.json (shapes: 1.5), else 7.5]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="output PNG")
@size_options
@usage_errors
def command(prompt: str, model: str, seed: int, steps: int | None, guidance: float | None, out: Path,
            height: int | None, width: int | None, pipeline_args: tuple[str, ...]) -> None:
    """Generate an image for PROMPT with a fixed seed."""
    from PIL import Image

    adapter = build_adapter(model, steps, guidance, batch_size=1, height=height, width=width,
                            pipeline_args=pipeline_args)
    adapter.words(prompt)  # validates: non-empty, known words, within the context length
    image = Image.fromarray(adapter.generate([prompt], [seed])[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    click.echo(f"wrote {out} ({image.width}x{image.height}, seed {seed})")
