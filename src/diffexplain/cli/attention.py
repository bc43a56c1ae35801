"""``diffexplain attention``: where each word of a prompt lands in the image."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import build_adapter, parse_pipeline_args, size_options, usage_errors


@click.command("attention")
@click.argument("prompt")
@click.option("--model", default="shapes", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None)
@click.option("--guidance", type=float, default=None)
@click.option("--views", default="time,head,layer", show_default=True, help="comma-separated: time, head, layer")
@click.option("--segmenter", type=click.Choice(["slic", "felzenszwalb", "kmeans_attention", "sam"]),
              default="kmeans_attention", show_default=True)
@click.option("--regions", "n_regions", type=int, default=4, show_default=True)
@click.option("--sam-path", default=None, help="local SAM weights directory (for --segmenter sam)")
@click.option("--min-grid", type=int, default=None,
              help="average only layers whose query grid is at least N x N [default: the pipeline's "
                   "diffexplain.json (16 for the shapes models), every layer otherwise]")
@click.option("--image", "image_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="source image, for an InstructPix2Pix, img2img or inpainting pipeline")
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="inpainting mask (white = repaint), with --image")
@click.option("--strength", type=float, default=None, help="img2img / inpainting strength, with --image")
@click.option("--image-guidance", type=float, default=None, help="InstructPix2Pix image guidance, with --image")
@click.option("--maps", "view", type=click.Choice(["attention", "output"]), default="attention", show_default=True,
              help="attention probabilities, or output-space maps of SD3 / Flux joint blocks (after ConceptAttention)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@size_options
@usage_errors
def command(prompt, model, seed, steps, guidance, views, segmenter, n_regions, sam_path, min_grid, image_path,
            mask_path, strength, image_guidance, view, out, height, width, pipeline_args) -> None:
    """Record cross-attention while generating PROMPT; write heatmaps, overlays, views and a report."""
    from PIL import Image

    from ..attention import record_prompt
    from ..attention.regions import match_regions, segment
    from ..report.html import attention_section, write_page

    view_list = [v.strip() for v in views.split(",") if v.strip()]
    unknown = [v for v in view_list if v not in ("time", "head", "layer")]
    if unknown:
        raise ValueError(f"views must be among time, head, layer; got {unknown}")
    if image_path is None:
        if mask_path is not None or strength is not None or image_guidance is not None:
            raise ValueError("--mask, --strength and --image-guidance need --image (an image-to-image pipeline)")
        adapter = build_adapter(model, steps, guidance, batch_size=1, height=height, width=width,
                                pipeline_args=pipeline_args)
    else:
        from ..models.edit_adapter import EditAdapter
        from ..models.loading import load_pipeline

        adapter = EditAdapter(load_pipeline(model), image=image_path, mask=mask_path, strength=strength,
                              image_guidance_scale=image_guidance, num_inference_steps=steps, guidance_scale=guidance,
                              batch_size=1, pipeline_kwargs=parse_pipeline_args(pipeline_args))
    image, maps = record_prompt(adapter, prompt, seed, view=view)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out / "image.png")
    maps.save(out)
    if min_grid is None:
        min_grid = adapter.defaults.attention_min_grid
    layers = maps.layers_at_least(min_grid)
    heatmaps = maps.all_word_heatmaps(layers=layers).numpy()
    labels = segment(image, segmenter, n_segments=n_regions, heatmaps=heatmaps, sam_path=sam_path, seed=seed)
    regions = match_regions(labels, heatmaps, maps.words[0])
    section = attention_section(maps, image, views=view_list, regions=regions, out_dir=out, layers=layers)
    summary = dict(prompt=prompt, seed=seed, words=list(maps.words[0]), layers=layers,
                   region_best_word=[maps.words[0][w] for w in regions.best_word],
                   word_best_region=regions.best_region.tolist())
    (out / "regions.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_page(out / "report.html", "diffexplain attention", [section], heading=prompt)
    click.echo(f"wrote {out}/report.html, attention.json/.safetensors, {len(maps.words[0])} heatmaps and overlays")
