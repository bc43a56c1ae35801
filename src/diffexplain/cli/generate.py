"""``diffexplain generate``: one image from a prompt, seeded."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("generate")
@click.argument("prompt")
@click.option("--model", default="shapes", show_default=True, help="'shapes' or a local diffusers pipeline directory")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="denoising steps [shapes default: 20]")
@click.option("--guidance", type=float, default=None, help="classifier-free guidance scale [shapes default: 4.0]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="output PNG")
def command(prompt: str, model: str, seed: int, steps: int | None, guidance: float | None, out: Path) -> None:
    """Generate an image for PROMPT with a fixed seed."""
    from ..models import shapes
    from ..models.generate import generate_images
    from ..models.loading import is_shapes_pipeline, load_pipeline

    try:
        pipe = load_pipeline(model)
        if is_shapes_pipeline(pipe):
            from ..world import check_vocabulary

            check_vocabulary(prompt)
        images = generate_images(
            pipe, [prompt], seeds=[seed],
            num_inference_steps=steps or shapes.DEFAULT_STEPS,
            guidance_scale=guidance if guidance is not None else shapes.DEFAULT_GUIDANCE,
        )
    except (ValueError, FileNotFoundError) as error:
        raise click.UsageError(str(error)) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out)
    click.echo(f"wrote {out} ({images[0].width}x{images[0].height}, seed {seed})")
