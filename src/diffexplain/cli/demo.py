"""``diffexplain demo``: the main job on the embedded shapes model, offline, on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import click

DEMO_CAPTIONS = (
    "a big yellow circle on the left",
    "a small purple square at the top",
    "an image of a big orange triangle in the centre",
    "a big yellow circle on the left and a small blue square on the right",
    "a red square at the bottom with a big purple square at the top",
    "a small orange triangle on the right on a black background",
    "a green circle at the top and a yellow circle at the bottom",
    "there is a big purple square on the left with a small red circle on the right",
)


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def command(out: Path, seed: int) -> None:
    """Generate held-out shapes captions with the built-in model and check them against their captions."""
    from rich.console import Console
    from rich.table import Table

    from ..models import shapes
    from ..models.generate import generate_images
    from ..report.figures import image_grid
    from ..world import check

    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    pipe = shapes.load("text2image")
    console.print(f"[bold]diffexplain demo[/] - built-in shapes model, {len(DEMO_CAPTIONS)} held-out captions, seed {seed}")
    images = generate_images(pipe, list(DEMO_CAPTIONS), seeds=[seed] * len(DEMO_CAPTIONS),
                             num_inference_steps=shapes.DEFAULT_STEPS, guidance_scale=shapes.DEFAULT_GUIDANCE)
    table = Table("caption", "colour", "count", "shape", "size", "position")
    rows = []
    for index, (caption, image) in enumerate(zip(DEMO_CAPTIONS, images)):
        image.save(out / f"sample_{index}.png")
        result = check(image, caption)
        verdicts = {a: getattr(result, a) for a in ("colour", "count", "shape", "size", "position")}
        rows.append(dict(caption=caption, image=f"sample_{index}.png", **verdicts))
        table.add_row(caption, *("-" if v is None else ("ok" if v else "[red]wrong[/]") for v in verdicts.values()))
    image_grid(images, columns=4, scale=3).save(out / "samples.png")
    (out / "demo.json").write_text(json.dumps(dict(seed=seed, samples=rows), indent=2) + "\n")
    console.print(table)
    console.print(f"wrote {out}/samples.png and {out}/demo.json")
