"""Output-space maps (after ConceptAttention) on SD3 and Flux joint blocks."""

import numpy as np
import pytest
import torch

from diffexplain.attention import record_prompt
from diffexplain.attention.concept import ConceptAttentionRecorder
from diffexplain.models.adapter import TextToImageAdapter
from tests.families import FAMILIES

PROMPT = "a big red circle"


@pytest.fixture(scope="module", params=["sd3", "flux"])
def mmdit(request, tmp_path_factory):
    pipe = FAMILIES[request.param](tmp_path_factory.mktemp(request.param))
    return request.param, TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16, guidance_scale=3.0)


def test_output_maps_are_the_softmax_of_image_and_word_attention_outputs(mmdit):
    name, adapter = mmdit
    layout = "none" if name == "flux" else "cfg"
    kept = (77 + 0, 77 + 4) if name == "sd3" else (0, 4)  # T5 positions of the 4 words (no start token)
    recorder = ConceptAttentionRecorder(adapter.pipe, batch_layout=layout, keep_steps=True, tokens=kept)
    outputs, handles = {}, []
    for layer, module in recorder.layers.items():
        handles.append(module.register_forward_hook(
            lambda m, a, out, _l=layer: outputs.setdefault(_l, []).append((out[0].clone(), out[1].clone()))))
    try:
        with recorder:
            adapter.generate([PROMPT], [0])
    finally:
        for handle in handles:
            handle.remove()
    assert recorder.layers and set(outputs) == set(recorder.layers)
    for layer, calls in outputs.items():
        for (image, text), mine in zip(calls, recorder.accumulators[layer].steps):
            rows = slice(image.shape[0] // 2, None) if layout == "cfg" else slice(None)
            expected = (image[rows] @ text[rows, kept[0]:kept[1]].transpose(1, 2)).softmax(-1)
            torch.testing.assert_close(mine[:, 0], expected, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(mine.sum(-1), torch.ones_like(mine.sum(-1)))


def test_record_prompt_output_view_keeps_the_image_and_separates_words(mmdit):
    name, adapter = mmdit
    plain = adapter.generate([PROMPT], [1])[0]
    image, maps = record_prompt(adapter, PROMPT, 1, view="output")
    np.testing.assert_array_equal(image, plain)
    _, attention = record_prompt(adapter, PROMPT, 1)
    assert set(maps.layers) < set(attention.layers) or name == "sd3"
    red, circle = maps.word_heatmap("red"), maps.word_heatmap("circle")
    assert float(red.sum()) > 0 and not torch.allclose(red, circle)
    assert not torch.allclose(red, attention.word_heatmap("red"))


def test_output_view_needs_joint_attention(tmp_path):
    pipe = FAMILIES["pixart"](tmp_path)
    with pytest.raises(ValueError, match="no joint-attention blocks"):
        ConceptAttentionRecorder(pipe)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16)
    with pytest.raises(ValueError, match="view must be"):
        record_prompt(adapter, PROMPT, 0, view="values")


def test_record_views_gives_both_views_from_one_unchanged_generation(mmdit):
    from diffexplain.attention.record import record_views

    _, adapter = mmdit
    plain = adapter.generate([PROMPT], [1])[0]
    image, attention, output = record_views(adapter, PROMPT, 1)
    np.testing.assert_array_equal(image, plain)  # two observing recorders: the image is untouched
    _, alone = record_prompt(adapter, PROMPT, 1)
    _, output_alone = record_prompt(adapter, PROMPT, 1, view="output")
    assert output is not None
    torch.testing.assert_close(attention.word_heatmap("red"), alone.word_heatmap("red"))
    torch.testing.assert_close(output.word_heatmap("red"), output_alone.word_heatmap("red"))


def test_record_views_has_no_output_view_without_joint_attention(tmp_path):
    from diffexplain.attention.record import record_views
    from tests.families import tiny_sd

    adapter = TextToImageAdapter(tiny_sd(tmp_path), num_inference_steps=2)  # a UNet: cross-attention only
    image, attention, output = record_views(adapter, PROMPT, 0)
    assert output is None and image.dtype == np.uint8 and attention.words[0] == ("a", "big", "red", "circle")
