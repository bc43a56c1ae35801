"""Prompt-word attribution on every model family, on tiny pipelines built and saved by the tests.

For each family: the adapter recognises it, a dropped word disappears from the token ids every
text encoder receives (read by hooks on the encoders), exact Shapley's efficiency holds, and a
prompt longer than an encoder's window is refused naming that encoder.
"""

import itertools

import numpy as np
import pytest
import torch

from diffexplain.embed import PixelEmbedder
from diffexplain.explain.api import explain_prompt
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from tests.families import CALL_KWARGS, FAMILIES, SIZE

PROMPT = "a big red circle"


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_adapter(request, tmp_path_factory):
    name = request.param
    pipe = FAMILIES[name](tmp_path_factory.mktemp(name))
    size = SIZE.get(name, 16)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2, height=size, width=size, batch_size=8,
                                 pipeline_kwargs=CALL_KWARGS.get(name))
    return name, adapter


class TokenSpy:
    """Records the input ids each text encoder of a pipeline receives, with forward pre-hooks."""

    def __init__(self, adapter):
        self.adapter, self.seen, self.handles = adapter, {}, []

    def __enter__(self):
        for attribute, _, encoder in self.adapter.encoders:
            self.seen[attribute] = []

            def hook(module, args, kwargs, _attribute=attribute):
                ids = args[0] if args else kwargs["input_ids"]
                self.seen[_attribute].extend(ids.tolist())

            self.handles.append(encoder.register_forward_pre_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def test_the_family_is_recognised_from_the_pipeline_class(family_adapter):
    name, adapter = family_adapter
    assert adapter.family.name == name
    assert len(adapter.encoders) == {"sd": 1, "sdxl": 2, "sd3": 3, "flux": 2, "pixart": 1, "sana": 1}[name]


def test_a_dropped_word_disappears_from_every_encoder_and_shapley_is_efficient(family_adapter):
    name, adapter = family_adapter
    with TokenSpy(adapter) as spy:
        explanation = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, embedder=PixelEmbedder(size=8))
    assert explanation.features == tuple(PROMPT.split())
    assert np.isfinite(explanation.values).all()
    assert explanation.values.sum() == pytest.approx(explanation.full_value - explanation.base_value, abs=1e-5)
    assert explanation.n_generations == 2 ** 4
    words = PROMPT.split()
    coalitions = [[w for w, keep in zip(words, mask) if keep] for mask in itertools.product([0, 1], repeat=4)]
    lead = " " if adapter.family.instruction_prefix else ""  # Sana: the words follow "User Prompt: "
    for attribute, tokenizer, _ in adapter.encoders:
        expected = {tuple(tokenizer(lead + " ".join(c), add_special_tokens=False).input_ids)
                    for c in coalitions}
        assert len(expected) == 16
        expected.add(())  # the negative prompt (Sana encodes it without the instruction)
        assert spy.seen[attribute], f"{name}: {attribute} never ran"
        assert received_texts(spy.seen[attribute], tokenizer) == expected, (name, attribute)


def received_texts(rows, tokenizer) -> set:
    """The text token ids of each encoded row: without the prefix every row shares (start token; Sana's
    instruction) and without trailing special tokens (end, padding)."""
    specials = set(tokenizer.all_special_ids)
    negatives = [row for row in rows if all(t in specials for t in row)]  # the empty negative prompt
    rows = [row for row in rows if row not in negatives]
    common = 0
    while all(len(row) > common and row[common] == rows[0][common] for row in rows):
        common += 1
    out = set()
    for row in rows:
        tail = list(row[common:])
        while tail and tail[-1] in specials:
            tail.pop()
        out.add(tuple(tail))
    return out | ({()} if negatives else set())


def test_a_prompt_beyond_every_encoders_window_is_refused_naming_the_cut_words(family_adapter):
    name, adapter = family_adapter
    longest = max(r.window for r in adapter.readings(PROMPT))
    long = " ".join(["red circle"] * longest)
    with pytest.raises(ValueError, match="longer than every text encoder reads"):
        adapter.words(long)


def test_a_prompt_only_clip_cuts_is_explained_as_diffusers_reads_it(family_adapter):
    """SD3 and Flux: CLIP truncates, T5 reads on; every word T5 sees stays a feature and the
    coverage says which words CLIP saw."""
    name, adapter = family_adapter
    clip = adapter.readings(PROMPT)[0]
    words = ("red circle " * clip.window).split()[:clip.window + 4]
    prompt = " ".join(words)
    if name not in ("sd3", "flux"):
        with pytest.raises(ValueError, match="longer than every text encoder reads"):
            adapter.words(prompt)
        return
    assert adapter.words(prompt) == words
    coverage = adapter.coverage(prompt)
    assert coverage[0].startswith("CLIP") and f"saw words 1-{clip.window - 2} of {len(words)}" in coverage[0]
    assert coverage[-1] == "T5 saw every word"


def test_a_saved_family_pipeline_loads_by_its_folder(family_adapter, tmp_path):
    name, adapter = family_adapter
    adapter.pipe.save_pretrained(tmp_path / name)
    loaded = load_pipeline(str(tmp_path / name))
    assert type(loaded) is type(adapter.pipe)
    again = TextToImageAdapter(loaded, num_inference_steps=2, height=adapter.height, width=adapter.width,
                               pipeline_kwargs=CALL_KWARGS.get(name))
    np.testing.assert_array_equal(again.generate([PROMPT], [3]), adapter.generate([PROMPT], [3]))


def test_sd3_without_t5_loads_and_explains(tmp_path):
    from tests.families import tiny_sd3

    loaded = tiny_sd3(tmp_path, t5=False)  # saved, then loaded by load_pipeline
    assert loaded.text_encoder_3 is None
    adapter = TextToImageAdapter(loaded, num_inference_steps=2, height=16, width=16)
    assert [a for a, _, _ in adapter.encoders] == ["text_encoder", "text_encoder_2"]
    explanation = explain_prompt(adapter, "red circle", method="shapley", seeds=1, embedder=PixelEmbedder(size=8))
    assert np.isfinite(explanation.values).all()


class ContextSpy:
    """Records the text context (``encoder_hidden_states``) the denoiser receives, conditional rows only."""

    def __init__(self, adapter):
        self.adapter, self.rows, self.handle = adapter, [], None

    def __enter__(self):
        denoiser = getattr(self.adapter.pipe, self.adapter.family.denoiser)

        def hook(module, args, kwargs):
            context = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
            half = context.shape[0] // 2 if self.adapter.family.name != "flux" else 0
            self.rows.extend(context[half:].clone())

        self.handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_empty_embedding_replaces_each_encoders_word_positions(family_adapter):
    """Dropping "red" leaves every other position of the context as the full prompt's and puts the
    empty prompt's encoding at red's positions in every encoder's segment; the full coalition is the
    prompt itself; exact Shapley stays efficient."""
    from diffexplain.models import perturbations

    name, adapter = family_adapter
    full = adapter.family.encode(adapter, [PROMPT])["prompt_embeds"][0]
    empty = adapter.family.encode(adapter, [""])["prompt_embeds"][0]
    positions = perturbations.word_positions(adapter, PROMPT)
    assert len(positions[2]) == {"sd3": 2}.get(name, 1)  # SD3: a CLIP and a T5 position for "red"
    with ContextSpy(adapter) as spy:
        perturbations.EmptyEmbedding().generate(adapter, PROMPT, np.array([[1, 1, 0, 1]]), [0])
    context = spy.rows[0]
    red = torch.zeros(context.shape[0], dtype=torch.bool)
    for start, end in positions[2]:
        red[start:end] = True
    torch.testing.assert_close(context[red], empty[red])
    torch.testing.assert_close(context[~red], full[~red])
    assert not torch.allclose(full[red], empty[red])
    # batch of one each: numerics may differ with the batch size
    np.testing.assert_array_equal(perturbations.EmptyEmbedding().generate(adapter, PROMPT, np.ones((1, 4)), [0])[0],
                                  adapter.generate([PROMPT], [0])[0])
    explanation = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, embedder=PixelEmbedder(size=8),
                                 perturbation="empty_embedding")
    assert explanation.values.sum() == pytest.approx(explanation.full_value - explanation.base_value, abs=1e-5)


def test_a_flux_model_without_guidance_input_gets_few_step_defaults(tmp_path):
    """Flux.1 schnell is timestep-distilled: 4 steps and no guidance, unless told otherwise."""
    from diffusers import FluxTransformer2DModel

    pipe = FAMILIES["flux"](tmp_path)
    assert TextToImageAdapter(pipe, height=16, width=16).num_inference_steps == 28
    pipe.transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                              num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                              joint_attention_dim=32, pooled_projection_dim=32,
                                              axes_dims_rope=(4, 4, 8), guidance_embeds=False)
    adapter = TextToImageAdapter(pipe, height=16, width=16)
    assert (adapter.num_inference_steps, adapter.guidance_scale) == (4, 0.0)
    assert TextToImageAdapter(pipe, height=16, width=16, num_inference_steps=2).num_inference_steps == 2
    assert adapter.generate([PROMPT], [0]).shape == (1, 16, 16, 3)
