import json
import shutil

import pytest

from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.defaults import GENERIC, MARKER, pipeline_defaults, read_defaults
from diffexplain.models.loading import load_pipeline, registered_pipelines
from tests.helpers import tiny_text2image


def test_shipped_shapes_pipelines_carry_their_defaults():
    from diffexplain_shapes import pipelines

    text2image = pipelines.defaults("text2image")
    assert (text2image.num_inference_steps, text2image.guidance_scale) == (20, 1.5)
    assert (text2image.attention_min_grid, text2image.attention_tau) == (16, 0.05)
    assert pipelines.defaults("paint_by_example").guidance_scale == 5.0  # what its benchmark ran with
    assert pipelines.defaults("paint_by_example").vocabulary is None
    assert "please" in pipelines.defaults("instruct_pix2pix").vocabulary  # instructions' words too
    assert "please" not in pipelines.defaults("text2image").vocabulary


def test_registered_names_resolve_to_the_shipped_folders():
    from diffexplain_shapes import pipelines

    names = registered_pipelines()
    assert names["shapes"] == names["text2image"] == str(pipelines.weights_path("text2image"))
    assert set(pipelines.PIPELINES) <= set(names)


def test_a_copied_shapes_pipeline_keeps_its_defaults_and_vocabulary(tmp_path):
    """Defaults travel in the folder's own marker, not in where the folder lies."""
    from diffexplain_shapes import pipelines

    copy = tmp_path / "my copy"
    shutil.copytree(pipelines.weights_path("text2image"), copy)
    adapter = TextToImageAdapter(load_pipeline(str(copy)))
    assert (adapter.num_inference_steps, adapter.guidance_scale) == (20, 1.5)
    assert adapter.defaults.attention_min_grid == 16
    with pytest.raises(ValueError, match="'zebra'"):
        adapter.words("a red zebra")
    assert TextToImageAdapter(load_pipeline(str(copy)), guidance_scale=3.0).guidance_scale == 3.0


def test_a_pipeline_without_a_marker_gets_the_generic_defaults(tmp_path):
    pipe, _, directory = tiny_text2image(tmp_path)
    assert pipeline_defaults(pipe) == GENERIC
    assert read_defaults(None) == GENERIC
    (directory / MARKER).write_text(json.dumps({"sampler": {"num_inference_steps": 3}}))
    defaults = read_defaults(directory)
    assert defaults.num_inference_steps == 3 and defaults.guidance_scale == GENERIC.guidance_scale
    assert defaults.vocabulary is None
    GENERIC.check_vocabulary("any words at all")  # an open vocabulary refuses nothing
