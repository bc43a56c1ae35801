"""Silently wrong answers at word location, each checked against what the encoder actually read.

A word's positions are those the pipeline's own text encoder received for it: read back from the
input ids (a forward pre-hook on the encoder) and decoded, independently of the locator.
"""

import inspect

import numpy as np
import pytest
import torch

from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.perturbations import EmptyEmbedding
from tests.families import CALL_KWARGS, tiny_flux, tiny_pixart, tiny_sd3

CAPS = "A BIG Red circle on the LEFT"


class IdSpy:
    """The input ids each call of ``encoder`` receives."""

    def __init__(self, encoder):
        self.encoder, self.ids = encoder, []

    def __enter__(self):
        self.handle = self.encoder.register_forward_pre_hook(
            lambda m, a, k: self.ids.append((a[0] if a else k["input_ids"])[0].tolist()), with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def read_back(adapter, encoder, prompt):
    """The ids ``encoder`` read when the pipeline encoded ``prompt`` (its first call)."""

    with IdSpy(encoder) as spy:
        adapter.family.encode(adapter, [prompt])
    return spy.ids[0]


@pytest.fixture(scope="module")
def pixart(tmp_path_factory):
    pipe = tiny_pixart(tmp_path_factory.mktemp("pixart"))
    return TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16, pipeline_kwargs=CALL_KWARGS["pixart"])


def test_pixart_words_are_located_in_the_lower_cased_text_its_t5_reads(pixart):
    """PixArt lower-cases the prompt before T5 (case-sensitive) reads it: "BIG" must be read from
    the tokens of "big", and "LEFT" from "left", not from the typed text's tokens or padding."""
    adapter = pixart
    tokenizer = adapter.pipe.tokenizer
    assert tokenizer.convert_ids_to_tokens(tokenizer("BIG", add_special_tokens=False).input_ids) != \
        tokenizer.convert_ids_to_tokens(tokenizer("big", add_special_tokens=False).input_ids)  # case matters
    ids = read_back(adapter, adapter.pipe.text_encoder, CAPS)
    spans = adapter.context_spans(CAPS)
    for word, (start, end) in zip(CAPS.split(), spans):
        assert tokenizer.decode(ids[start:end]).strip() == word.lower(), word


def test_pixart_maps_of_every_word_are_not_empty(pixart):
    from diffexplain.attention import record_prompt

    _, maps = record_prompt(pixart, CAPS, 0)
    for index in range(len(CAPS.split())):
        assert float(maps.word_heatmap(index).sum()) > 0, CAPS.split()[index]


def test_pixart_caption_cleaning_is_what_empty_embedding_encodes(tmp_path):
    """PixArt's __call__ cleans captions by default (beautifulsoup4 + ftfy installed): the full
    coalition under empty_embedding must be the prompt's own image, bit for bit."""
    pytest.importorskip("bs4")
    pytest.importorskip("ftfy")
    pipe = tiny_pixart(tmp_path)
    assert inspect.signature(pipe.__call__).parameters["clean_caption"].default is True
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16,
                                 pipeline_kwargs=CALL_KWARGS["pixart"])
    prompt = "A Red circle, on the LEFT"
    full = EmptyEmbedding().generate(adapter, prompt, np.ones((1, 5), bool), [0])[0]
    np.testing.assert_array_equal(full, adapter.generate([prompt], [0])[0])


@pytest.mark.parametrize("build", [tiny_flux, tiny_sd3], ids=["flux", "sd3"])
def test_a_users_max_sequence_length_is_the_window(build, tmp_path):
    """With max_sequence_length=6, T5 reads 5 text tokens: words past them get no value from T5;
    if CLIP reads them they stay (SD3's context, Flux's pooled vector), and attention refuses by name."""
    pipe = build(tmp_path)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16,
                                 pipeline_kwargs={"max_sequence_length": 6})
    prompt = "a big red circle on the left"
    t5 = adapter.readings(prompt)[-1]
    assert t5.label == "T5" and t5.window == 6
    ids = read_back(adapter, pipe.text_encoder_3 if build is tiny_sd3 else pipe.text_encoder_2, prompt)
    assert len(ids) == 6
    seen = [w for w, s in zip(prompt.split(), t5.spans) if s is not None]
    tokens = [i for i in ids if i not in pipe.tokenizer_2.all_special_ids] if build is tiny_flux else ids
    assert pipe.tokenizer_2.decode(tokens, skip_special_tokens=True).split() == seen if build is tiny_flux else True
    assert t5.spans[-1] is None and t5.spans[0] is not None
    with pytest.raises(ValueError, match="T5 cuts off .*'left'"):
        adapter.context_spans(prompt)
    assert "T5 saw words 1-" in " ".join(adapter.coverage(prompt))
    if build is tiny_flux:  # every word is still read (by the pooled CLIP): explained, and the result says so
        from diffexplain.embed import PixelEmbedder
        from diffexplain.explain.api import explain_prompt

        explanation = explain_prompt(adapter, prompt, method="kernelshap", seeds=1, embedder=PixelEmbedder(size=4))
        assert explanation.features == tuple(prompt.split())
        assert explanation.metadata["encoders_read"] == adapter.coverage(prompt)


def test_pixart_sigma_reads_300_tokens(tmp_path):
    """PixArt-Σ's window is its own __call__ default (300), not α's 120."""
    from diffusers import PixArtSigmaPipeline

    alpha = tiny_pixart(tmp_path)
    sigma = PixArtSigmaPipeline(**alpha.components)
    long = " ".join(["red circle"] * 85)  # 170 words: above 120, below 300
    adapter = TextToImageAdapter(sigma, num_inference_steps=2, height=16, width=16,
                                 pipeline_kwargs={"use_resolution_binning": False})
    assert adapter.readings(long)[0].window == 300
    assert adapter.words(long) == long.split()
    with pytest.raises(ValueError, match="longer than every text encoder reads"):
        TextToImageAdapter(alpha, num_inference_steps=2, height=16, width=16,
                           pipeline_kwargs=CALL_KWARGS["pixart"]).words(long)


def test_family_is_told_by_class_hierarchy_not_name(tmp_path):
    from diffusers import StableDiffusionLDM3DPipeline, StableDiffusionPipeline

    from diffexplain.models.families import family_of
    from tests.families import tiny_sd

    pipe = tiny_sd(tmp_path)

    class MyPipeline(StableDiffusionPipeline):  # a renamed subclass keeps its family
        pass

    assert family_of(MyPipeline(**pipe.components)).name == "sd"
    ldm3d = StableDiffusionLDM3DPipeline(**{k: v for k, v in pipe.components.items()
                                            if k in inspect.signature(StableDiffusionLDM3DPipeline).parameters})
    with pytest.raises(ValueError, match="StableDiffusionLDM3DPipeline is not a supported pipeline family"):
        family_of(ldm3d)


def test_flux_true_cfg_negative_calls_stay_out_of_the_maps(tmp_path):
    """Flux's true CFG runs the transformer again at each step with the negative prompt: the maps
    are those of the prompt's own calls, as without true CFG."""
    from diffexplain.attention import record_prompt

    pipe = tiny_flux(tmp_path)
    plain = TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16)
    true_cfg = TextToImageAdapter(pipe, num_inference_steps=2, height=16, width=16,
                                  pipeline_kwargs={"true_cfg_scale": 4.0, "negative_prompt": "blue square"})
    _, a = record_prompt(plain, "a red circle", 0)
    _, b = record_prompt(true_cfg, "a red circle", 0)
    from diffexplain.attention.recorder import time_group

    assert a.timesteps == b.timesteps and len(b.timesteps) == 2  # one recorded call per step, not two
    first = time_group(float(a.timesteps[0]), 1000, 5)
    for layer in a.layers:
        assert int(b.counts[layer].sum()) == 2
        # the first step's input is the same with and without true CFG: so are its maps
        torch.testing.assert_close(a.means[layer][:, first], b.means[layer][:, first])


def test_sd3_output_maps_leave_out_the_context_pre_only_block(tmp_path):
    from diffexplain.attention.concept import ConceptAttentionRecorder

    pipe = tiny_sd3(tmp_path)
    recorder = ConceptAttentionRecorder(pipe)
    last = pipe.transformer.transformer_blocks[-1].attn
    assert last.context_pre_only and last not in recorder.layers.values()
    assert recorder.layers
