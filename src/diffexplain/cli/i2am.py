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
    from ..attention.report import view_grid
    from ..explain.i2am import i2am_paint_by_example
    from ..models.edit_adapter import PaintByExampleAdapter, load_mask
    from ..models.loading import load_pipeline
    from ..report.html import _STYLE, png_data_uri

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
    mask_image = (adapter.mask[..., None].repeat(3, axis=2) * 255).astype("uint8")
    tiles = "".join(f"<div class='tile'><img src='{png_data_uri(im)}'><br>{name}</div>" for name, im in
                    [("source", adapter.source), ("mask", mask_image), ("reference", adapter.reference),
                     ("generated", result.image), ("reference to generated", r2g_overlay)]
                    + ([("guidance difference", guidance_overlay)] if guidance_overlay is not None else []))
    guidance_views = ""
    if result.guidance_time is not None:  # one overlay per time group, noisiest first
        cells = "".join(f"<div class='tile'><img src='{png_data_uri(overlay(result.image, torch.from_numpy(m)))}'>"
                        f"<br>group {g}: IMACS {score:.3f}</div>"
                        for g, (m, score) in enumerate(zip(result.guidance_time, result.imacs_guidance_time)))
        guidance_views = f"<h3>guidance difference, time view (group 0 = noisiest)</h3><div class='tiles'>{cells}</div>"
    views = guidance_views + "".join(
        f"<h3>{v} view</h3><img src='{png_data_uri(view_grid(result.maps, v, [0], result.image))}'>"
        for v in ("time", "head", "layer"))
    reverse = overlay(adapter.reference, torch.from_numpy(result.g2r))
    scored = "" if result.imacs_g2r is None else f" IMACS vs the reference mask: <b>{result.imacs_g2r:.3f}</b>."
    g2r_html = (f"<h2>Generated to reference</h2><img src='{png_data_uri(reverse)}'><p>One reference token: every "
                "generated position attends to it alone, so this is how the image encoder's class token draws on "
                f"the reference's patches (attention rollout).{scored}</p>")
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>diffexplain i2am</title><style>{_STYLE}"
                f"</style></head><body><h1>How the reference is used (I2AM)</h1><div class='tiles'>{tiles}</div>"
                f"<p>IMACS (reference-to-generated vs the mask, lambda 3): <b>{result.imacs_r2g:.3f}</b></p>"
                + (f"<p>IMACS of the guidance difference |pred(reference) - pred(unconditional)|: "
                   f"<b>{result.imacs_guidance:.3f}</b>. With a single reference token the attention logits "
                   f"never reach the output, so training does not shape the reference-to-generated map; "
                   f"the guidance difference is read off the prediction itself.</p>"
                   if result.imacs_guidance is not None else "") +
                f"{views}{g2r_html}</body></html>")
    (out / "report.html").write_text(document)
    guided = "-" if result.imacs_guidance is None else format(result.imacs_guidance, ".3f")
    click.echo(f"IMACS {result.imacs_r2g:.3f} (guidance difference: {guided}); wrote {out}/report.html, "
               "generated.png, r2g_overlay.png, i2am.json")
