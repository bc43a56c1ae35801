"""The supported-models matrix, run: every family's tiny pipeline (built and saved here, no
download) through every command its row of the README table claims, from ``--model DIR``.

``MATRIX`` is the table; ``test_the_readme_table_is_this_matrix`` keeps the README's copy equal
to it, so the README never claims a cell that is not run here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffexplain.cli.main import cli
from tests import families, helpers

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a big red circle"

# family -> (explain, edit variants or "n/a: why", attention, i2am)
MATRIX = {
    "Stable Diffusion 1.x / 2.x": ("✓", "img2img, inpainting, InstructPix2Pix", "✓ (cross-attention)",
                                   "n/a: no reference image"),
    "SDXL": ("✓", "img2img, inpainting, InstructPix2Pix", "✓ (cross-attention)", "n/a: no reference image"),
    "SD3 / SD3.5": ("✓", "img2img, inpainting", "✓ (joint attention; `--maps output`)", "n/a: no reference image"),
    "Flux.1": ("✓", "img2img, inpainting, Fill, Kontext", "✓ (double- and single-stream; `--maps output`)",
               "n/a: no reference image"),
    "PixArt-α / Σ": ("✓", "n/a: diffusers has no PixArt edit pipeline", "✓ (cross-attention)",
                     "n/a: no reference image"),
    "Sana": ("✓", "n/a: diffusers has no Sana edit pipeline", "✓ (cross-attention)", "n/a: no reference image"),
    "Paint-by-Example": ("n/a: no text", "n/a: no text", "✓ (reference token)", "✓"),
}
HEADER = "| family | prompt words (`explain`) | edit explanations (`edit`) | attention | I2AM (`i2am`) |"


def render(matrix=MATRIX) -> str:
    lines = [HEADER, "|---|---|---|---|---|"]
    lines += [f"| {family} | {' | '.join(cells)} |" for family, cells in matrix.items()]
    return "\n".join(lines)


def test_the_readme_table_is_this_matrix():
    readme = (ROOT / "README.md").read_text()
    assert render() in readme, "README's supported-models table differs from tests/test_conformance.py MATRIX"


# -- the tiny pipelines, built once -----------------------------------------------------------------
# family -> (builder, text2image size, extra --pipeline-arg for explain / attention)
TEXT2IMAGE = {
    "Stable Diffusion 1.x / 2.x": (lambda d: helpers.tiny_text2image(d)[0], 16, []),
    "SDXL": (families.tiny_sdxl, 16, []),
    "SD3 / SD3.5": (families.tiny_sd3, 16, []),
    "Flux.1": (families.tiny_flux, 16, []),
    "PixArt-α / Σ": (families.tiny_pixart, 16, ["use_resolution_binning=false"]),
    "Sana": (families.tiny_sana, 32, ["use_resolution_binning=false"]),
}
# (family, variant) -> (builder from the text2image pipeline and a folder, CLI arguments of `edit`)
EDITS = {
    ("Stable Diffusion 1.x / 2.x", "img2img"): (lambda p, d: helpers.tiny_image_pipeline(d, "img2img"),
                                                ["--strength", "0.8"]),
    ("Stable Diffusion 1.x / 2.x", "inpainting"): (lambda p, d: helpers.tiny_image_pipeline(d, "inpaint"), ["MASK"]),
    ("Stable Diffusion 1.x / 2.x", "InstructPix2Pix"): (lambda p, d: helpers.tiny_image_pipeline(d, "pix2pix"),
                                                        ["--image-guidance", "1.5"]),
    ("SDXL", "img2img"): (lambda p, d: families.variant(p, "StableDiffusionXLImg2ImgPipeline", d),
                          ["--strength", "0.8"]),
    ("SDXL", "inpainting"): (lambda p, d: families.variant(p, "StableDiffusionXLInpaintPipeline", d),
                             ["MASK", "--strength", "0.8"]),
    ("SDXL", "InstructPix2Pix"): (lambda p, d: families.tiny_sdxl_pix2pix(d), ["--image-guidance", "1.5"]),
    ("SD3 / SD3.5", "img2img"): (lambda p, d: families.variant(p, "StableDiffusion3Img2ImgPipeline", d),
                                 ["--strength", "0.8"]),
    ("SD3 / SD3.5", "inpainting"): (lambda p, d: families.variant(p, "StableDiffusion3InpaintPipeline", d),
                                    ["MASK", "--strength", "0.8"]),
    ("Flux.1", "img2img"): (lambda p, d: families.variant(p, "FluxImg2ImgPipeline", d), ["--strength", "0.8"]),
    ("Flux.1", "inpainting"): (lambda p, d: families.variant(p, "FluxInpaintPipeline", d),
                               ["MASK", "--strength", "0.8"]),
    ("Flux.1", "Fill"): (lambda p, d: families.tiny_flux_fill(d), ["MASK"]),
    # Kontext resizes its reference to about a megapixel unless told the area
    ("Flux.1", "Kontext"): (lambda p, d: families.variant(p, "FluxKontextPipeline", d),
                            ["--pipeline-arg", "_auto_resize=false", "--pipeline-arg", "max_area=256"]),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    pipes, folders = {}, {}
    for family, (build, _, _) in TEXT2IMAGE.items():
        pipe = build(root / re.sub(r"\W+", "_", family))
        pipes[family], folders[family] = pipe, _folder(pipe)
    return root, pipes, folders


def _folder(pipe) -> str:
    return pipe.config["_name_or_path"]


def _run(args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output[-3000:]
    return result


def _claimed_edits(family):
    cell = MATRIX[family][1]
    return [] if cell.startswith("n/a") else [v.strip() for v in cell.split(",")]


@pytest.mark.parametrize("family", list(TEXT2IMAGE))
def test_explain_runs_from_the_folder(built, family, tmp_path):
    assert MATRIX[family][0] == "✓"
    _, _, folders = built
    _, size, extra = TEXT2IMAGE[family]
    out = tmp_path / "explain"
    _run(["explain", PROMPT, "--model", folders[family], "--method", "shapley", "--seeds", 1, "--embedder", "pixel",
          "--steps", 2, "--height", size, "--width", size, *sum((["--pipeline-arg", a] for a in extra), []),
          "--out", out])
    saved = json.loads((out / "explanation.json").read_text())
    assert saved["features"] == PROMPT.split() and saved["n_generations"] == 16
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("family", list(TEXT2IMAGE))
def test_attention_runs_from_the_folder(built, family, tmp_path):
    assert MATRIX[family][2].startswith("✓")
    _, _, folders = built
    _, size, extra = TEXT2IMAGE[family]
    out = tmp_path / "attention"
    _run(["attention", PROMPT, "--model", folders[family], "--steps", 2, "--height", size, "--width", size,
          "--views", "time,head,layer", "--segmenter", "slic", *sum((["--pipeline-arg", a] for a in extra), []),
          "--out", out])
    assert json.loads((out / "regions.json").read_text())["words"] == PROMPT.split()
    assert "Where each word lands" in (out / "report.html").read_text()
    if family in ("SD3 / SD3.5", "Flux.1"):  # MMDiT: also the output-space maps (ConceptAttention)
        _run(["attention", PROMPT, "--model", folders[family], "--steps", 2, "--height", size, "--width", size,
              "--views", "time,layer", "--segmenter", "slic", "--maps", "output", "--out", tmp_path / "output"])
        assert (tmp_path / "output" / "report.html").is_file()


@pytest.mark.parametrize("family, variant", list(EDITS))
def test_edit_runs_from_the_folder(built, family, variant, tmp_path):
    assert variant in _claimed_edits(family)
    root, pipes, _ = built
    build, arguments = EDITS[(family, variant)]
    pipe = build(pipes[family], root / re.sub(r"\W+", "_", f"{family}-{variant}"))
    rng = np.random.default_rng(0)
    source, mask = tmp_path / "source.png", tmp_path / "mask.png"
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(source)
    box = np.zeros((16, 16), np.uint8)
    box[4:12, 4:12] = 255
    Image.fromarray(box).save(mask)
    arguments = sum((["--mask", mask] if a == "MASK" else [a] for a in arguments), [])
    out = tmp_path / "edit"
    _run(["edit", "make the circle red", "--image", source, "--model", _folder(pipe), *arguments,
          "--method", "shapley", "--seeds", 1, "--embedder", "pixel", "--steps", 3, "--out", out])
    assert json.loads((out / "explanation.json").read_text())["features"] == ["make", "the", "circle", "red"]


def test_every_claimed_edit_variant_is_run():
    claimed = {(family, v) for family in MATRIX for v in _claimed_edits(family)}
    assert claimed == set(EDITS)


def test_paint_by_example_row_runs_attention_and_i2am_from_its_folder(tmp_path):
    """Its attention is I2AM's reference-token map; it has no text, so no explain / edit cells."""
    assert MATRIX["Paint-by-Example"][2].startswith("✓") and MATRIX["Paint-by-Example"][3] == "✓"
    pipe = helpers.tiny_paint_by_example(tmp_path)
    rng = np.random.default_rng(0)
    paths = {name: tmp_path / f"{name}.png" for name in ("image", "reference", "mask")}
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(paths["image"])
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(paths["reference"])
    box = np.zeros((16, 16), np.uint8)
    box[4:12, 4:12] = 255
    Image.fromarray(box).save(paths["mask"])
    out = tmp_path / "i2am"
    _run(["i2am", "--image", paths["image"], "--mask", paths["mask"], "--reference", paths["reference"],
          "--model", _folder(pipe), "--steps", 2, "--out", out])
    summary = json.loads((out / "i2am.json").read_text())
    assert np.isfinite(summary["imacs_r2g"]) and summary["g2r"].startswith("image encoder")
    with pytest.raises(ValueError, match="PaintByExamplePipeline is a pipeline without text conditioning"):
        from diffexplain.models.adapter import TextToImageAdapter

        TextToImageAdapter(pipe)


@pytest.mark.slow
def test_the_trained_flux_folder_runs_explain_both_attention_views_and_edits(tmp_path):
    """The shipped shapes Flux.1 model (trained, not random) through the Flux row: explain, attention
    in both views, and img2img / inpainting on the same transformer."""
    from diffexplain.models.loading import registered_pipelines
    from diffexplain_shapes import pipelines as shapes
    from diffexplain_shapes import sample_scene

    folder = registered_pipelines()["flux"]
    out = tmp_path / "explain"
    _run(["explain", "a big red circle", "--model", "flux", "--method", "shapley", "--seeds", 1, "--embedder",
          "pixel", "--steps", 2, "--out", out])
    assert json.loads((out / "explanation.json").read_text())["n_generations"] == 16
    for view in ("attention", "output"):
        _run(["attention", "a big red circle", "--model", folder, "--steps", 2, "--views", "layer", "--segmenter",
              "slic", "--maps", view, "--out", tmp_path / view])
        assert (tmp_path / view / "report.html").is_file()
    scene = sample_scene(np.random.default_rng(3), split="heldout")
    source, mask = tmp_path / "source.png", tmp_path / "mask.png"
    Image.fromarray(scene.render()).save(source)
    box = np.zeros((64, 64), np.uint8)
    box[16:48, 16:48] = 255
    Image.fromarray(box).save(mask)
    pipe = shapes.load("flux")
    for variant, arguments in (("FluxImg2ImgPipeline", ["--strength", "0.8"]),
                               ("FluxInpaintPipeline", ["--mask", mask, "--strength", "0.9"])):
        edited = families.variant(pipe, variant, tmp_path)
        out = tmp_path / variant
        _run(["edit", "a red circle", "--image", source, "--model", _folder(edited), *arguments, "--method",
              "shapley", "--seeds", 1, "--embedder", "pixel", "--steps", 2, "--pipeline-arg",
              "max_sequence_length=32", "--out", out])
        assert json.loads((out / "explanation.json").read_text())["features"] == ["a", "red", "circle"]
