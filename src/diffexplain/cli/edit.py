"""``diffexplain edit``: which words of an edit instruction drive the edit."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import parse_pipeline_args, pipeline_arg_option, usage_errors
from .explain import explanation_options, run_explanation, settings_from


@click.command("edit")
@click.argument("instruction")
@click.option("--image", "image_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the source image")
@click.option("--model", default="instruct_pix2pix", show_default=True,
              help="a built-in shapes model (instruct_pix2pix, or inpaint with --mask and a caption), or a local "
                   "InstructPix2Pix, img2img or inpainting pipeline directory")
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="inpainting mask (white = repaint; grey levels thresholded at 0.5)")
@click.option("--strength", type=float, default=None, help="img2img / inpainting strength")
@click.option("--composite", is_flag=True, default=False,
              help="inpainting: explain the source with the generation pasted inside the mask (the pipeline "
                   "redraws every pixel)")
@click.option("--image-guidance", type=float, default=None, help="InstructPix2Pix image guidance scale")
@click.option("--reference", type=click.Choice(["edit", "source"]), default="edit", show_default=True,
              help="distances to the unperturbed edit, or to the source image (the SMILE script's choice)")
@explanation_options
@pipeline_arg_option
@usage_errors
def command(instruction, image_path, model, mask_path, strength, composite, image_guidance, reference, steps,
            guidance, out, pipeline_args, **options) -> None:
    """Attribute an edit of the image at --image to the words of INSTRUCTION (source and mask fixed)."""
    from ..models.edit_adapter import EditAdapter
    from ..models.loading import load_pipeline
    from ..report.html import tiles_section
    from ._common import prepare_output

    cache = prepare_output(out, options.pop("cache_path"), options.pop("repair_cache"))
    settings = settings_from(options, reference="full" if reference == "edit" else "source")
    adapter = EditAdapter(load_pipeline(model), image=image_path, mask=mask_path, strength=strength,
                          image_guidance_scale=image_guidance, composite=composite, num_inference_steps=steps,
                          guidance_scale=guidance, pipeline_kwargs=parse_pipeline_args(pipeline_args))
    click.echo(f"generating at {adapter.width}x{adapter.height}" +
               (f"; note: {adapter.size_note()}" if adapter.size_note() else ""))

    def source_and_edit(explanation):
        edit = adapter.generate([instruction], [explanation.settings["seeds"][0]])[0]
        tiles = [("source", adapter.source), ("edit", edit)]
        if adapter.mask is not None:
            tiles.append(("mask", (adapter.mask[..., None].repeat(3, axis=2) * 255).astype("uint8")))
        return tiles_section(tiles, "Source and edit")

    run_explanation(adapter, instruction, settings, cache=cache, out=out, sections=[source_and_edit], **options)
