"""Pipelines in bfloat16 (on the CPU): generation, explanation and attention work, and attention
is computed and accumulated in float32."""

import numpy as np
import pytest
import torch

from diffexplain.attention import record_prompt
from diffexplain.embed import PixelEmbedder
from diffexplain.explain.api import explain_prompt
from diffexplain.models.adapter import TextToImageAdapter
from tests.families import CALL_KWARGS, FAMILIES, SIZE
from tests.helpers import tiny_text2image

BUILD = {"sd": lambda d: tiny_text2image(d)[0], "sdxl": FAMILIES["sdxl"], "sd3": FAMILIES["sd3"],
         "flux": FAMILIES["flux"], "pixart": FAMILIES["pixart"], "sana": FAMILIES["sana"]}


@pytest.mark.parametrize("name", sorted(BUILD))
def test_a_bfloat16_pipeline_explains_and_records_in_float32(name, tmp_path):
    pipe = BUILD[name](tmp_path).to(torch.bfloat16)
    size = SIZE.get(name, 16)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, height=size, width=size, guidance_scale=3.0,
                                 pipeline_kwargs=CALL_KWARGS.get(name))
    explanation = explain_prompt(adapter, "red circle", method="shapley", seeds=1, embedder=PixelEmbedder(size=8))
    assert np.isfinite(explanation.values).all()
    assert explanation.values.sum() == pytest.approx(explanation.full_value - explanation.base_value, abs=1e-5)
    plain = adapter.generate(["red circle"], [0])[0]
    image, maps = record_prompt(adapter, "red circle", 0)
    np.testing.assert_array_equal(image, plain)
    for mean in maps.means.values():
        assert mean.dtype == torch.float32 and torch.isfinite(mean).all()
    assert float(maps.word_heatmap("red").sum()) > 0
