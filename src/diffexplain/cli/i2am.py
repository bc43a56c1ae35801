"""``diffexplain i2am``: how a reference image is used by a Paint-by-Example model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import usage_errors


@click.command("i2am")
@click.option("--image", "image_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="region to fill (white); grey levels thresholded at 0.5")
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--reference-mask", "reference_mask_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="the reference object's pixels (white), the reference's size: scores G2R by IMACS")
@click.option("--model", default="paint_by_example", show_default=True,
              help="the built-in shapes Paint-by-Example or a local Paint-by-Example pipeline directory")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None,
              help="sampler steps [default: the pipeline's; the I2AM paper uses 50 DDIM steps]")
@click.option("--guidance", type=float, default=None, help="guidance scale [default: the pipeline's]")
@click.option("--time-groups", type=int, default=5, show_default=True)
@click.option("--composite/--no-composite", default=False, show_default=True,
              help="paste the generation into the source inside the mask only")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@usage_errors
def command(image_path, mask_path, reference_path, reference_mask_path, model, seed, steps, guidance, time_groups,
            composite, out) -> None:
    """Reference-to-generated and generated-to-reference maps with IMACS."""
    from PIL import Image

    from ..attention.maps import overlay
    from ..image2image.i2am import i2am_paint_by_example
    from ..models.edit_adapter import PaintByExampleAdapter, load_mask
    from ..models.loading import load_pipeline
    from ..report.html import i2am_report

    adapter = PaintByExampleAdapter(load_pipeline(model), image=image_path, mask=mask_path, reference=reference_path,
                                    num_inference_steps=steps, guidance_scale=guidance, composite=composite)
    reference_mask = None
    if reference_mask_path is not None:
        reference_mask = load_mask(reference_mask_path, adapter.reference.shape[:2], argument="reference_mask",
                                   of="the reference")
    result = i2am_paint_by_example(adapter, seed=seed, time_groups=time_groups, reference_mask=reference_mask)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result.image).save(out / "generated.png")
    result.maps.save(out)
    import torch

    r2g_overlay = overlay(result.image, torch.from_numpy(result.r2g))
    Image.fromarray(r2g_overlay).save(out / "r2g_overlay.png")
    guidance_overlay = None
    if result.guidance is not None:
        guidance_overlay = overlay(result.image, torch.from_numpy(result.guidance))
        Image.fromarray(guidance_overlay).save(out / "guidance_overlay.png")
    summary = dict(seed=seed, steps=adapter.num_inference_steps, imacs_r2g=result.imacs_r2g, imacs_g2r=result.imacs_g2r,
                   imacs_guidance=result.imacs_guidance, composite=composite,
                   imacs_guidance_by_time_group=result.imacs_guidance_time,
                   g2r="image encoder's attention rollout (one reference token)")
    (out / "i2am.json").write_text(json.dumps(summary, indent=2) + "\n")
    i2am_report(out / "report.html", result, adapter)
    guided = "-" if result.imacs_guidance is None else format(result.imacs_guidance, ".3f")
    click.echo(f"IMACS {result.imacs_r2g:.3f} (guidance difference: {guided}); wrote {out}/report.html, "
               "generated.png, r2g_overlay.png, i2am.json")
