"""Attention maps on every family, checked against an independent reference: the probabilities
softmax(Q K^T / sqrt(d) + mask) of the very q, k (after the block's norms and rotary embedding)
that the layer's processor hands to ``scaled_dot_product_attention``, read by patching that
function during a second, unrecorded run.
"""

import numpy as np
import pytest
import torch

from diffexplain.attention import AttentionRecorder, record_prompt
from diffexplain.models.adapter import TextToImageAdapter
from tests.families import CALL_KWARGS, FAMILIES, SIZE

PROMPT = "a big red circle"
# Sana's instruction prefix off: these tests read word positions from the tokenizer (the prefix has its own test)
EXTRA = {**CALL_KWARGS, "sana": {**CALL_KWARGS["sana"], "complex_human_instruction": None}}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_adapter(request, tmp_path_factory):
    name = request.param
    pipe = FAMILIES[name](tmp_path_factory.mktemp(name))
    size = SIZE.get(name, 16)
    return name, TextToImageAdapter(pipe, num_inference_steps=2, height=size, width=size, batch_size=1,
                                    guidance_scale=3.0, pipeline_kwargs=EXTRA.get(name))


class ReferenceProbs:
    """Inside each recorded layer, computes an eager softmax beside SDPA and keeps its probabilities."""

    def __init__(self, layers):
        self.layers, self.calls, self.inside, self.handles = layers, [], None, []

    def sdpa(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        logits = query.float() @ key.float().transpose(-1, -2) * (scale or query.shape[-1] ** -0.5)
        if attn_mask is not None:
            logits = logits + attn_mask.float()
        probs = logits.softmax(-1)
        if self.inside is not None:
            self.calls.append((self.inside, probs))
        # the layer's output comes from the real kernel, so later steps see the same latents
        return self.original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                             scale=scale, **kwargs)

    def __enter__(self):
        for name, module in self.layers.items():
            self.handles.append(module.register_forward_pre_hook(lambda m, a, _n=name: setattr(self, "inside", _n)))
            self.handles.append(module.register_forward_hook(lambda m, a, o: setattr(self, "inside", None)))
        self.original = torch.nn.functional.scaled_dot_product_attention
        torch.nn.functional.scaled_dot_product_attention = self.sdpa
        return self

    def __exit__(self, *exc):
        torch.nn.functional.scaled_dot_product_attention = self.original
        for handle in self.handles:
            handle.remove()


def test_recorded_attention_equals_the_reference_softmax_of_each_layer(family_adapter):
    name, adapter = family_adapter
    recorder = AttentionRecorder(adapter.pipe, keep_steps=True,
                                 batch_layout="cfg" if name not in ("flux",) else "none")
    with recorder:
        adapter.generate([PROMPT], [0])
    with ReferenceProbs(recorder.layers) as reference:
        adapter.generate([PROMPT], [0])
    by_layer = {}
    for layer, probs in reference.calls:
        by_layer.setdefault(layer, []).append(probs)
    assert set(by_layer) == set(recorder.layers)
    text_len = recorder.accumulators[next(iter(recorder.layers))].sums.shape[-1]
    for layer, steps in by_layer.items():
        recorded = recorder.accumulators[layer].steps
        assert len(recorded) == len(steps) == 2
        for full, mine in zip(steps, recorded):
            rows = full[full.shape[0] // 2:] if name != "flux" else full  # the conditional half under CFG
            kind = recorder.kinds[layer]
            if kind == "cross":
                block = rows
            elif kind == "joint":  # SD3: [image; text]
                block = rows[..., :-text_len, -text_len:]
            else:  # Flux: [text; image]
                block = rows[..., text_len:, :text_len]
            assert mine.shape == block.shape, (layer, kind)
            torch.testing.assert_close(mine, block, atol=2e-6, rtol=1e-4)


def test_recording_leaves_the_image_bit_identical_and_words_get_different_maps(family_adapter):
    name, adapter = family_adapter
    plain = adapter.generate([PROMPT], [1])[0]
    image, maps = record_prompt(adapter, PROMPT, 1)
    np.testing.assert_array_equal(image, plain)
    assert maps.words[0] == tuple(PROMPT.split())
    red, circle = maps.word_heatmap("red"), maps.word_heatmap("circle")
    assert red.shape == circle.shape == (adapter.height, adapter.width)
    assert float(red.sum()) > 0 and not torch.allclose(red, circle)
    for module in AttentionRecorder(adapter.pipe).layers.values():
        assert not module._forward_pre_hooks


def test_padding_gets_attention_only_where_the_pipeline_does_not_mask_it(family_adapter):
    """PixArt and Sana mask their encoder's padding, and the recorded maps honour the mask; CLIP
    contexts (SD, SDXL) and SD3 / Flux's T5 are not masked, and their padding does get attention."""
    name, adapter = family_adapter
    with AttentionRecorder(adapter.pipe, batch_layout="none" if name == "flux" else "cfg") as recorder:
        adapter.generate([PROMPT], [2])  # every context position kept
    maps = recorder.maps([PROMPT], image_size=(adapter.height, adapter.width),
                         pipeline_kwargs=adapter.pipeline_kwargs)
    mean = next(iter(maps.means.values()))  # (B, G, heads, N, T)
    words_end = maps.spans[0][-1][1]
    assert mean.shape[-1] > words_end + 1
    padding = float(mean[..., words_end + 1:].sum()) / float(mean.sum())
    if name in ("pixart", "sana"):
        assert padding < 1e-6
    else:
        assert padding > 1e-3


def test_keeping_only_the_word_tokens_gives_the_same_word_maps(family_adapter):
    """record_prompt keeps the prompt's word positions (an MMDiT context is hundreds of tokens)."""
    name, adapter = family_adapter
    _, kept = record_prompt(adapter, PROMPT, 3)
    layout = "none" if name == "flux" else "cfg"
    with AttentionRecorder(adapter.pipe, batch_layout=layout) as recorder:
        adapter.generate([PROMPT], [3])
    full = recorder.maps([PROMPT], image_size=(adapter.height, adapter.width),
                         pipeline_kwargs=adapter.pipeline_kwargs)
    spans = adapter.context_spans(PROMPT)
    n_tokens = spans[-1][1] - spans[0][0]  # the words' tokens (several pieces for CLIP's "big" and "red")
    assert next(iter(kept.means.values())).shape[-1] == n_tokens < next(iter(full.means.values())).shape[-1]
    for word in PROMPT.split():
        torch.testing.assert_close(kept.word_heatmap(word), full.word_heatmap(word))


def test_sana_words_are_located_after_its_default_instruction_prefix(tmp_path):
    """Sana prepends a long instruction and keeps the last positions; the words are located in the
    ids its encoder read. Independent check: changing "red" first changes the context exactly at
    red's located position (Gemma is causal: everything after changes too, nothing before)."""
    adapter = TextToImageAdapter(FAMILIES["sana"](tmp_path), num_inference_steps=2, height=32, width=32,
                                 guidance_scale=3.0, pipeline_kwargs={"use_resolution_binning": False})
    spans = adapter.context_spans(PROMPT)
    # the instruction's ids are all cut (Sana keeps the start token and the last 299 positions) and its
    # trailing space merges into the first word ("▁a"): the words start right after the start token
    assert spans[0][0] == 1
    red = adapter.family.encode(adapter, [PROMPT])["prompt_embeds"][0]
    blue = adapter.family.encode(adapter, [PROMPT.replace("red", "blue")])["prompt_embeds"][0]
    differs = [i for i in range(red.shape[0]) if not torch.allclose(red[i], blue[i])]
    assert differs[0] == spans[2][0]
    plain = adapter.generate([PROMPT], [0])[0]
    image, maps = record_prompt(adapter, PROMPT, 0)
    np.testing.assert_array_equal(image, plain)
    assert not torch.allclose(maps.word_heatmap("red"), maps.word_heatmap("circle"))


def test_every_hook_is_removed_after_an_exception_inside_the_block(family_adapter):
    name, adapter = family_adapter
    recorder = AttentionRecorder(adapter.pipe, batch_layout="none")
    modules = [getattr(adapter.pipe, adapter.family.denoiser), *recorder.layers.values()]
    with pytest.raises(RuntimeError, match="stop"):
        with recorder:
            assert all(m._forward_pre_hooks for m in modules)
            raise RuntimeError("stop")
    assert not any(m._forward_pre_hooks for m in modules)


def test_recorded_memory_does_not_grow_with_the_number_of_steps(family_adapter):
    name, adapter = family_adapter
    layout = "none" if name == "flux" else "cfg"
    sizes = []
    for steps in (2, 5):
        with AttentionRecorder(adapter.pipe, batch_layout=layout) as recorder:
            adapter.pipe(PROMPT, num_inference_steps=steps, height=adapter.height, width=adapter.width,
                         guidance_scale=3.0, output_type="np", **(EXTRA.get(name) or {}))
        sizes.append(sum(acc.sums.numel() for acc in recorder.accumulators.values()))
        assert sum(int(acc.counts.sum()) for acc in recorder.accumulators.values()) == steps * len(recorder.layers)
    assert sizes[0] == sizes[1] > 0
