"""The shipped shapes Flux pipeline: a plain ``FluxPipeline`` folder that diffusers loads by itself, run
through every command the Flux row of the supported-models table claims (explain, attention with
both views, edit through img2img and inpainting on the same transformer)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffexplain.cli.main import cli
from diffexplain_shapes import pipelines as shapes

PROMPT = "a big red circle on the left"
FAST = ["--steps", "4", "--seeds", "1", "--embedder", "pixel"]


@pytest.fixture(scope="module")
def flux_dir():
    return shapes.weights_path("flux")


def test_diffusers_loads_the_folder_by_itself(flux_dir):
    import torch
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(flux_dir, torch_dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(PROMPT, height=64, width=64, num_inference_steps=4, max_sequence_length=32,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    marker = json.loads((flux_dir / "diffexplain.json").read_text())
    assert marker["pipeline_args"]["max_sequence_length"] == 32 and marker["sampler"]["height"] == 64


def test_explain_and_both_attention_views(tmp_path):
    runner = CliRunner()
    out = tmp_path / "explain"
    result = runner.invoke(cli, ["explain", PROMPT, "--model", "flux", "--method", "kernelshap", *FAST,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "explanation.json").read_text())["features"] == PROMPT.split()
    for view in ("attention", "output"):
        result = runner.invoke(cli, ["attention", PROMPT, "--model", "flux", "--steps", "4", "--maps", view,
                                     "--views", "time,layer", "--out", str(tmp_path / view)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / view / "overlay_word02.png").is_file()


@pytest.mark.parametrize("variant", ["FluxImg2ImgPipeline", "FluxInpaintPipeline"])
def test_edit_on_the_same_transformer(tmp_path, variant):
    import diffusers

    from diffexplain.models.loading import load_pipeline

    pipe = load_pipeline("flux")
    folder = tmp_path / variant
    getattr(diffusers, variant)(**pipe.components).save_pretrained(folder)
    (folder / "diffexplain.json").write_text((shapes.weights_path("flux") / "diffexplain.json").read_text())
    source = tmp_path / "source.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(source)
    extra = ["--strength", "0.8"]
    if variant == "FluxInpaintPipeline":
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 8:40] = 255
        Image.fromarray(mask).save(tmp_path / "mask.png")
        extra += ["--mask", str(tmp_path / "mask.png")]
    result = CliRunner().invoke(cli, ["edit", "a red circle", "--model", str(folder), "--image", str(source),
                                      "--method", "shapley", *FAST, *extra, "--out", str(tmp_path / "edit")])
    assert result.exit_code == 0, result.output
