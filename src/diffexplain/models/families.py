"""The model families diffexplain explains, recognised from the pipeline's class, and what differs
between them: which module denoises, which text encoders read the prompt, how far each one reads,
and the sampler defaults of the family's reference pipelines.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from .words import read, tokenizer_attribute



@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: short name ("sd", "sdxl", "sd3", "flux", "pixart", "sana").
        title: what users call it.
        classes: the diffusers pipeline classes of the family; a pipeline belongs to it when its class
            is one of them or derives from one (a user's subclass keeps its family).
        denoiser: the pipeline attribute holding the denoising network ("unet" or "transformer").
        attention: how the image attends to the text: "cross" (separate cross-attention layers) or
            "joint" (MMDiT: one softmax over image and text tokens).
        num_inference_steps, guidance_scale: the defaults of the family's reference pipelines.
        roles: per text encoder, (encoder attribute, where its tokens start in the denoiser's
            context: 0, "clip" (after the CLIP window: SD3's T5) or None (pooled vector only: Flux's
            CLIP), window: "tokenizer" (its ``model_max_length``) or "sequence" (the call's
            ``max_sequence_length``)).
        instruction_prefix: the pipeline prepends an instruction and keeps the last positions (Sana).
    """

    name: str
    title: str
    classes: tuple[str, ...]
    denoiser: str
    attention: str
    num_inference_steps: int
    guidance_scale: float
    roles: tuple[tuple[str, Optional[int | str], str], ...] = (("text_encoder", 0, "tokenizer"),)
    instruction_prefix: bool = False

    @property
    def encoders(self) -> tuple[tuple[str, str], ...]:
        """(tokenizer attribute, text-encoder attribute) of every text encoder, in order."""
        return tuple((tokenizer_attribute(attribute), attribute) for attribute, _, _ in self.roles)


_CLIP = ("text_encoder", 0, "tokenizer")
FAMILIES = (
    Family("sdxl", "SDXL", ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
                            "StableDiffusionXLInpaintPipeline", "StableDiffusionXLInstructPix2PixPipeline"), "unet",
           "cross", 30, 5.0,
           (_CLIP, ("text_encoder_2", 0, "tokenizer"))),
    Family("sd3", "SD3 / SD3.5", ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
                                  "StableDiffusion3InpaintPipeline"), "transformer",
           "joint", 28, 7.0, (_CLIP, ("text_encoder_2", 0, "tokenizer"), ("text_encoder_3", "clip", "sequence"))),
    Family("flux", "Flux.1", ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline", "FluxFillPipeline",
                              "FluxKontextPipeline"), "transformer",
           "joint", 28, 3.5,
           (("text_encoder", None, "tokenizer"), ("text_encoder_2", 0, "sequence"))),
    Family("pixart", "PixArt-α / Σ", ("PixArtAlphaPipeline", "PixArtSigmaPipeline"), "transformer",
           "cross", 20, 4.5, (("text_encoder", 0, "sequence"),)),
    Family("sana", "Sana", ("SanaPipeline",), "transformer", "cross", 20, 4.5,
           (("text_encoder", 0, "sequence"),), instruction_prefix=True),
    Family("sd", "Stable Diffusion 1.x / 2.x", ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                                "StableDiffusionInpaintPipeline",
                                                "StableDiffusionInstructPix2PixPipeline", "AltDiffusionPipeline",
                                                "AltDiffusionImg2ImgPipeline", "LatentConsistencyModelPipeline",
                                                "LatentConsistencyModelImg2ImgPipeline"), "unet",
           "cross", 20, 7.5),
)

SUPPORTED = ", ".join(f"{f.title} ({' / '.join(f.classes)})" for f in FAMILIES) + \
    ", and Paint-by-Example (PaintByExamplePipeline, for I2AM)"


def _classes(family: Family) -> tuple[type, ...]:
    import diffusers

    return tuple(cls for cls in (getattr(diffusers, name, None) for name in family.classes) if cls is not None)


def family_of(pipe) -> Family:
    """The family of ``pipe``: the family one of whose diffusers classes ``pipe`` is an instance of
    (its own class or a base: a user's subclass of ``StableDiffusionPipeline`` is Stable Diffusion;
    ``StableDiffusionLDM3DPipeline``, which derives from none of them, is not).

    Raises:
        ValueError: naming the class and what is supported, for any other pipeline, and for a
            pipeline of a known family missing its denoiser or every text encoder.
    """
    name = type(pipe).__name__
    family = next((f for f in FAMILIES if isinstance(pipe, _classes(f))), None)
    if family is None:
        kind = "a pipeline without text conditioning" if getattr(pipe, "text_encoder", None) is None and \
            getattr(pipe, "tokenizer", None) is None else "not a supported pipeline family"
        hint = " (Paint-by-Example: use PaintByExampleAdapter and i2am_paint_by_example)" \
            if any(c.__name__ == "PaintByExamplePipeline" for c in type(pipe).__mro__) else ""
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


def readings(pipe, family: Family, prompt: str, options: dict) -> list:
    """What each text encoder the pipeline has reads of ``prompt``: ``words.EncoderReading`` per
    encoder (its words' positions in the denoiser's context, None for a word it cuts off).

    Args:
        options: the pipeline call's extra keyword arguments (``max_sequence_length`` and so on).
    """
    roles = []
    for attribute, offset, kind in family.roles:
        if getattr(pipe, attribute, None) is None:
            continue  # SD3 saved without T5
        roles.append((attribute, int(pipe.tokenizer_max_length) if offset == "clip" else offset, kind))
    return read(pipe, roles, prompt, options, sana=family.instruction_prefix)
