"""The model families diffexplain explains, recognised from the pipeline's class, and what differs
between them: which module denoises, which text encoders read the prompt, how far each one reads,
and the sampler defaults of the family's reference pipelines.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..tokens import special_tokens_after, special_tokens_before


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: short name ("sd", "sdxl", "sd3", "flux", "pixart", "sana").
        title: what users call it.
        prefixes: diffusers pipeline class names that start with one of these belong to it.
        denoiser: the pipeline attribute holding the denoising network ("unet" or "transformer").
        encoders: (tokenizer attribute, text-encoder attribute) of every text encoder, in order.
        attention: how the image attends to the text: "cross" (separate cross-attention layers) or
            "joint" (MMDiT: one softmax over image and text tokens).
        num_inference_steps, guidance_scale: the defaults of the family's reference pipelines.
        max_sequence_length: the prompt window the pipeline gives its T5 / Gemma encoder (None: the
            tokenizer's own ``model_max_length``, CLIP's 77).
    """

    name: str
    title: str
    prefixes: tuple[str, ...]
    denoiser: str
    encoders: tuple[tuple[str, str], ...]
    attention: str
    num_inference_steps: int
    guidance_scale: float
    max_sequence_length: Optional[int] = None


FAMILIES = (
    # longest prefixes first: StableDiffusionXL and StableDiffusion3 are also StableDiffusion
    Family("sdxl", "SDXL", ("StableDiffusionXL",), "unet",
           (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")), "cross", 30, 5.0),
    Family("sd3", "SD3 / SD3.5", ("StableDiffusion3",), "transformer",
           (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"), ("tokenizer_3", "text_encoder_3")),
           "joint", 28, 7.0, 256),
    Family("flux", "Flux.1", ("Flux",), "transformer",
           (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")), "joint", 28, 3.5, 512),
    Family("pixart", "PixArt-α / Σ", ("PixArt",), "transformer", (("tokenizer", "text_encoder"),), "cross", 20, 4.5,
           120),
    Family("sana", "Sana", ("Sana",), "transformer", (("tokenizer", "text_encoder"),), "cross", 20, 4.5, 300),
    Family("sd", "Stable Diffusion 1.x / 2.x", ("StableDiffusion", "AltDiffusion", "LatentConsistencyModel"), "unet",
           (("tokenizer", "text_encoder"),), "cross", 20, 7.5),
)

SUPPORTED = ", ".join(f"{f.title} ({' / '.join(f.prefixes)}*Pipeline)" for f in FAMILIES) + \
    ", and Paint-by-Example (PaintByExamplePipeline, for I2AM)"


def family_of(pipe) -> Family:
    """The family of ``pipe``, from its class name.

    Raises:
        ValueError: naming the class and what is supported, for any other pipeline, and for a
            pipeline of a known family missing its denoiser or every text encoder.
    """
    name = type(pipe).__name__
    family = next((f for f in FAMILIES if name.startswith(f.prefixes)), None)
    if family is None:
        kind = "a pipeline without text conditioning" if getattr(pipe, "text_encoder", None) is None and \
            getattr(pipe, "tokenizer", None) is None else "not a supported pipeline family"
        hint = " (Paint-by-Example: use PaintByExampleAdapter and i2am_paint_by_example)" \
            if name.startswith("PaintByExample") else ""
        raise ValueError(f"{name} is {kind}{hint}; diffexplain supports {SUPPORTED}")
    if getattr(pipe, family.denoiser, None) is None:
        raise ValueError(f"{name} has no {family.denoiser}; a {family.title} pipeline needs one")
    if not any(getattr(pipe, tokenizer, None) is not None and getattr(pipe, encoder, None) is not None
               for tokenizer, encoder in family.encoders):
        raise ValueError(f"{name} has no text encoder and tokenizer, so it has no prompt words to explain; "
                         f"diffexplain supports {SUPPORTED}")
    return family


def text_encoders(pipe, family: Family) -> list[tuple[str, object, object]]:
    """(encoder attribute, tokenizer, text encoder) of every text encoder ``pipe`` has (SD3 may lack T5)."""
    out = []
    for tokenizer, encoder in family.encoders:
        tok, enc = getattr(pipe, tokenizer, None), getattr(pipe, encoder, None)
        if tok is not None and enc is not None:
            out.append((encoder, tok, enc))
    return out


def window(tokenizer, family: Family) -> int:
    """The number of text tokens (special tokens excluded) the pipeline passes on from this tokenizer:
    CLIP's ``model_max_length``; for T5 / Gemma the family's ``max_sequence_length``, if shorter."""
    specials = special_tokens_before(tokenizer) + special_tokens_after(tokenizer)
    length = int(tokenizer.model_max_length)
    if "CLIP" not in type(tokenizer).__name__ and family.max_sequence_length is not None:
        length = min(length, family.max_sequence_length)
    return length - specials


def context_segments(pipe, family: Family) -> list[tuple[object, int]]:
    """Where each tokenizer's tokens sit in the text context the denoiser receives, in order.

    Returns:
        (tokenizer, offset) pairs: that tokenizer's tokens start ``offset`` positions into the
        context. SD 1.x / 2.x, SDXL (both CLIPs' features share positions), PixArt and Sana: their
        first tokenizer at 0; SD3: CLIP at 0, then T5 after the CLIP window if it has T5; Flux: T5
        at 0 (its CLIP only gives the pooled embedding).
    """
    if family.name == "flux":
        return [(pipe.tokenizer_2, 0)]
    segments = [(pipe.tokenizer, 0)]
    if family.name == "sd3" and getattr(pipe, "text_encoder_3", None) is not None:
        segments.append((pipe.tokenizer_3, int(pipe.tokenizer_max_length)))
    return segments


def attention_text(pipe, family: Family) -> tuple[object, int]:
    """Which tokens of the denoiser's text context the words' maps are read from: the last segment
    of ``context_segments`` (SD3: the T5 copy of the prompt, or CLIP without T5)."""
    return context_segments(pipe, family)[-1]


def located_word_spans(adapter, prompt: str) -> list[tuple[int, int]]:
    """Each word's [start, end) positions in the context the denoiser receives, found in the token
    ids the text encoder actually read (for pipelines that rewrite the prompt before encoding).

    Sana prepends an instruction to the prompt and keeps the start token plus the last
    ``max_sequence_length - 1`` positions; the prompt's words are located in those ids, so a
    tokenizer that merges the prompt with the instruction is refused instead of mis-mapped.
    """
    import inspect

    import torch

    pipe = adapter.pipe
    if adapter.family.name != "sana":
        raise ValueError(f"located_word_spans is for Sana, got {adapter.family.title}")
    defaults = inspect.signature(pipe.__call__).parameters
    options = {key: adapter.pipeline_kwargs.get(key, defaults[key].default)
               for key in ("complex_human_instruction", "max_sequence_length", "clean_caption")}
    seen = []
    handle = pipe.text_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0] if args else kwargs["input_ids"])[0].tolist()),
        with_kwargs=True)
    try:
        with torch.no_grad():
            embeds = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, device=adapter._device(),
                                        **options)[0]
    finally:
        handle.remove()
    ids, length = seen[0], embeds.shape[1]
    kept = [ids[0]] + ids[len(ids) - (length - 1):] if length < len(ids) else ids
    tokenizer = pipe.tokenizer
    per_word = [tokenizer(word, add_special_tokens=False).input_ids for word in prompt.split()]
    flat = [t for word in per_word for t in word]
    starts = [i for i in range(len(kept) - len(flat) + 1) if kept[i:i + len(flat)] == flat]
    if not starts:
        raise ValueError(f"the words of {prompt!r} are not in the token ids {type(pipe).__name__}'s text encoder "
                         "received as they are when tokenized alone (the instruction prefix and the prompt merged, "
                         "or the prompt was cut): word positions are undefined")
    spans, position = [], starts[-1]  # the prompt ends the text, before padding
    for word in per_word:
        spans.append((position, position + len(word)))
        position += len(word)
    return spans
