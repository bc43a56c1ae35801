"""The ``empty_embedding`` perturbation on every family: each text encoder's outputs at a dropped
word's token positions are replaced by that encoder's outputs for the empty prompt at the same
positions (Stable Diffusion's single CLIP, SDXL's two CLIPs, SD3's CLIPs and T5, Flux's T5,
PixArt's T5, Sana's Gemma after its instruction prefix). Pooled embeddings (SDXL, SD3, Flux)
have no positions: they are the pooled embeddings of the coalition's text, as under ``drop``.

The encodings come from the pipeline's own ``encode_prompt``, so the negative prompt, the
sequence lengths and the concatenation of encoders are the pipeline's.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch



def check_supported(adapter, prompt: str) -> None:
    """Raise ValueError unless ``empty_embedding`` is defined for this adapter's pipeline and prompt."""
    from .families import FAMILIES

    if adapter.family not in FAMILIES:
        raise ValueError(f"perturbation='empty_embedding' is not defined for {adapter.family.title} "
                         f"({type(adapter.pipe).__name__}); use 'drop'")
    given = [k for k in ("negative_prompt", "negative_prompt_2", "negative_prompt_3") if adapter.pipeline_kwargs.get(k)]
    if given:  # the negative encodings here are the empty prompt's: a user's negative prompt would be lost
        raise ValueError(f"perturbation='empty_embedding' does not take {given[0]} (its negative encoding is the "
                         "empty prompt's); use perturbation='drop' with a negative prompt")
    readings = adapter.readings(prompt)  # refuses a prompt whose words cannot be located
    # SDXL: one set of positions for both encoders, so their splits must agree
    if adapter.family.name == "sdxl" and len(readings) > 1 and readings[0].spans != readings[1].spans:
        raise ValueError("perturbation='empty_embedding' needs SDXL's two tokenizers to split the prompt alike; "
                         f"they give {list(readings[0].spans)} and {list(readings[1].spans)}")


def word_positions(adapter, prompt: str) -> list[list[tuple[int, int]]]:
    """For each word, its [start, end) positions in the denoiser's context: one pair per context
    segment that holds it (``families.readings``; a segment that cut the word off has none, and
    encoders sharing positions, SDXL's and SD3's two CLIPs, count once)."""
    positions: list[list[tuple[int, int]]] = [[] for _ in prompt.split()]
    for reading in adapter.readings(prompt):
        if reading.offset is None:  # pooled only: no positions
            continue
        for word, span in enumerate(reading.spans):
            if span is not None and span not in positions[word]:
                positions[word].append(span)
    return positions


@torch.no_grad()
def encode(adapter, texts: Sequence[str]) -> dict[str, Any]:
    """The pipeline's own encodings of ``texts``: keyword arguments for the conditional inputs
    (``prompt_embeds`` (n, L, D) and, by family, ``pooled_prompt_embeds`` / ``prompt_attention_mask``)
    and for the negative ones (batch 1), as the pipeline makes them under its guidance setting."""
    pipe, family, texts = adapter.pipe, adapter.family.name, list(texts)
    device = adapter._device()
    guided = adapter.guidance_scale > 1
    length = adapter.pipeline_kwargs.get("max_sequence_length")
    if family == "sd":
        out = dict(prompt_embeds=adapter.encode(texts))
        if guided:
            out["negative_prompt_embeds"] = adapter.encode([""])
        return out
    if family in ("sdxl", "sd3"):  # CLIP (+ T5): per-position embeddings and a pooled one
        extra = {} if family == "sdxl" or length is None else dict(max_sequence_length=length)
        prompts = (texts,) if family == "sdxl" else (texts, None, None)  # SD3 takes prompt_2 / prompt_3
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            *prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guided, **extra)
        out = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)
        if guided:
            out.update(negative_prompt_embeds=negative[:1], negative_pooled_prompt_embeds=negative_pooled[:1])
        return out
    if family == "flux":  # guidance is an input of the distilled model: no negative
        extra = {} if length is None else dict(max_sequence_length=length)
        embeds, pooled, _ = pipe.encode_prompt(texts, None, device=device, num_images_per_prompt=1, **extra)
        return dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)
    if family in ("pixart", "sana"):  # one T5 / Gemma encoder with a padding mask
        # the __call__ defaults, which encode_prompt lacks or differs from (PixArt cleans captions by
        # default in __call__, not in encode_prompt; Sana's instruction prefix and window)
        from .words import call_default

        keys = ("clean_caption", "max_sequence_length") + (("complex_human_instruction",) if family == "sana" else ())
        options = {key: call_default(pipe, key, adapter.pipeline_kwargs) for key in keys}
        embeds, mask, negative, negative_mask = pipe.encode_prompt(
            texts, do_classifier_free_guidance=guided, device=device, num_images_per_prompt=1, **options)
        out = dict(prompt_embeds=embeds, prompt_attention_mask=mask)
        if guided:
            out.update(negative_prompt_embeds=negative[:1], negative_prompt_attention_mask=negative_mask[:1])
        return out
    raise ValueError(f"perturbation='empty_embedding' is not defined for {adapter.family.title}")


def masked(adapter, prompt: str, texts: Sequence[str], masks: np.ndarray) -> dict[str, Any]:
    """Pipeline keyword arguments for coalitions ``masks`` (n, d) of ``prompt``'s words, whose texts
    (the kept words) are ``texts``: the full prompt's encodings with the dropped words' positions
    taken from the empty prompt's; pooled embeddings of ``texts``; negatives repeated."""
    full, empty = encode(adapter, [prompt]), encode(adapter, [""])
    n = len(masks)
    embeds = full["prompt_embeds"].repeat(n, 1, 1)
    positions = word_positions(adapter, prompt)
    for row, mask in enumerate(np.asarray(masks, dtype=bool)):
        for word, keep in zip(positions, mask):
            if not keep:
                for start, end in word:
                    embeds[row, start:end] = empty["prompt_embeds"][0, start:end]
    out = dict(prompt_embeds=embeds)
    if "pooled_prompt_embeds" in full:
        out["pooled_prompt_embeds"] = encode(adapter, texts)["pooled_prompt_embeds"]
    if "prompt_attention_mask" in full:
        out["prompt_attention_mask"] = full["prompt_attention_mask"].repeat(n, 1)
    for key, value in full.items():
        if key.startswith("negative_"):
            out[key] = value.repeat(n, *([1] * (value.ndim - 1)))
    if "negative_prompt_embeds" in out:
        out["negative_prompt"] = None  # PixArt defaults it to "" and refuses it beside the embeddings
    return out
