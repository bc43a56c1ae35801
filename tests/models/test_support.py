"""Pipelines the library does not handle get a clear error naming the class and what is supported."""


import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffexplain.cli.main import cli
from diffexplain.models.adapter import TextToImageAdapter
from tests.helpers import tiny_image_pipeline


class HunyuanDiTPipeline:  # a transformer pipeline of a family not in the table
    transformer = object()
    text_encoder = tokenizer = object()


class PaintByExamplePipeline:
    unet = object()
    text_encoder = tokenizer = None


def test_unsupported_families_are_named_with_what_is_supported():
    with pytest.raises(ValueError, match="HunyuanDiTPipeline is not a supported pipeline family.*supports "
                                         "SDXL .*Flux.1.*Stable Diffusion 1.x / 2.x"):
        TextToImageAdapter(HunyuanDiTPipeline())
    with pytest.raises(ValueError, match="PaintByExamplePipeline is a pipeline without text conditioning .* "
                                         "PaintByExampleAdapter"):
        TextToImageAdapter(PaintByExamplePipeline())


@pytest.fixture(scope="module")
def pix2pix_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("p2p")
    tiny_image_pipeline(directory, "pix2pix")
    return directory / "tiny-pix2pix"


def test_an_image_to_image_pipeline_needs_its_source_image(pix2pix_dir, tmp_path):
    from diffexplain.models.loading import load_pipeline

    with pytest.raises(ValueError, match="StableDiffusionInstructPix2PixPipeline generates from a source image.*"
                                         "EditAdapter"):
        TextToImageAdapter(load_pipeline(str(pix2pix_dir)))
    result = CliRunner().invoke(cli, ["explain", "make the circle red", "--model", str(pix2pix_dir),
                                      "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "diffexplain edit --image" in result.output


def test_attention_takes_a_source_image_for_instruct_pix2pix(pix2pix_dir, tmp_path):
    import json

    source = tmp_path / "source.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(source)
    out = tmp_path / "att"
    result = CliRunner().invoke(cli, ["attention", "make the circle red", "--model", str(pix2pix_dir),
                                      "--image", str(source), "--steps", "2", "--views", "time",
                                      "--segmenter", "slic", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "regions.json").read_text())["words"] == ["make", "the", "circle", "red"]
    assert "Where each word lands" in (out / "report.html").read_text()
    refused = CliRunner().invoke(cli, ["attention", "a red circle", "--mask", str(source),
                                       "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "need --image" in refused.output
