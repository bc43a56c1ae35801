"""Model folders: refused in one line before diffusers opens them, never run as custom code;
``dtype=`` applies to every component of every family."""

import json

import pytest
import torch

from diffexplain.models.loading import load_pipeline
from tests.families import FAMILIES


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_load_pipeline_casts_every_component_to_the_dtype(name, tmp_path):
    pipe = FAMILIES[name](tmp_path)
    folder = tmp_path / "saved"
    pipe.save_pretrained(folder)
    loaded = load_pipeline(str(folder), dtype=torch.bfloat16)
    for component in loaded.components.values():
        if isinstance(component, torch.nn.Module):
            assert {p.dtype for p in component.parameters() if p.is_floating_point()} == {torch.bfloat16}


def test_sd3_in_bfloat16_generates_through_load_pipeline(tmp_path):
    from diffexplain.models.adapter import TextToImageAdapter

    pipe = FAMILIES["sd3"](tmp_path)
    pipe.save_pretrained(tmp_path / "saved")
    loaded = load_pipeline(str(tmp_path / "saved"), dtype=torch.bfloat16)
    image = TextToImageAdapter(loaded, num_inference_steps=2, height=16, width=16).generate(["a red circle"], [0])
    assert image.shape == (1, 16, 16, 3)


def _folder(tmp_path, index):
    folder = tmp_path / "model"
    folder.mkdir()
    if index is not None:
        (folder / "model_index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    return folder


@pytest.mark.parametrize("index, message", [
    (None, "has no model_index.json"),
    ("{not json", "is not JSON"),
    ([1, 2], "not a JSON object"),
    ({"unet": ["diffusers", "UNet2DConditionModel"]}, "names no pipeline class"),
    ({"_class_name": "NoSuchPipeline"}, "'NoSuchPipeline' is not a diffusers pipeline"),
    ({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]},
     "component 'unet' .* has no folder unet/"),
    ({"_class_name": "StableDiffusionPipeline", "unet": ["my_module", "Evil"]},
     "comes from 'my_module'.*custom code is not run"),
    ({"_class_name": "StableDiffusionPipeline", "unet": "x"}, None),
])
def test_a_folder_that_is_not_a_pipeline_is_refused_in_one_line(tmp_path, index, message):
    folder = _folder(tmp_path, index)
    with pytest.raises(ValueError, match=message or "not a diffusers pipeline folder|could not load") as error:
        load_pipeline(str(folder))
    assert "\n" not in str(error.value)
    assert "not a diffusers pipeline folder" in str(error.value) or "could not load" in str(error.value)


def test_custom_code_in_a_folder_is_never_run(tmp_path):
    folder = _folder(tmp_path, {"_class_name": "StableDiffusionPipeline", "unet": ["pipeline", "Evil"]})
    (folder / "unet").mkdir()
    flag = tmp_path / "ran"
    (folder / "pipeline.py").write_text(f"open({str(flag)!r}, 'w').write('x')\nclass Evil: pass\n")
    with pytest.raises(ValueError, match="custom code is not run"):
        load_pipeline(str(folder))
    assert not flag.exists()
