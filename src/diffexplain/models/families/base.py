"""What a model family is, and how pipelines find theirs.

A family owns everything that differs between model families: which module denoises, which text
encoders read the prompt and where their tokens sit in the denoiser's context, the encodings the
``empty_embedding`` perturbation swaps, which layers hold the image-to-text attention and how to
read the denoiser's inputs, which rows of a guided batch are conditional, and the sampler
defaults. Families register by their diffusers pipeline classes (as diffusers' hook registry is
keyed by module class); a pipeline belongs to the family one of whose classes it is an instance
of, so a user's subclass keeps its family. Nothing outside this package tests a family or a class
name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..words import EncoderReading, read, tokenizer_attribute

if TYPE_CHECKING:
    import torch

    from ..defaults import PipelineDefaults

# batch layouts of a guided denoiser call: which rows are the prompt's
LAYOUTS = ("cfg", "none", "pix2pix")
# (encoder attribute, context offset, window kind, encoder kind): see ``Family.roles``
Role = tuple[str, int | str | None, str, str]


def conditional_rows(layout: str, batch: int) -> slice:
    """The rows of a denoiser batch of ``batch`` that carry the prompt under ``layout``: "cfg"
    ([uncond, cond]: the second half), "pix2pix" (InstructPix2Pix's [text+image, image, none]:
    the first third) or "none" (every row).

    Raises:
        RuntimeError: when the batch does not split as the layout says.
    """
    if layout == "cfg":
        if batch % 2:
            raise RuntimeError(f"batch layout 'cfg' needs an even denoiser batch, got {batch}")
        return slice(batch // 2, batch)
    if layout == "pix2pix":
        if batch % 3:
            raise RuntimeError(f"batch layout 'pix2pix' needs a denoiser batch divisible by 3, got {batch}")
        return slice(0, batch // 3)
    if layout == "none":
        return slice(0, batch)
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def guided_layout(pipe: Any, guidance_scale: float, options: dict[str, Any]) -> str:
    """The batch layout a pipeline that batches its guidance uses: "pix2pix" when it takes an image
    guidance scale (InstructPix2Pix, which guides on text and image when both scales allow it),
    "cfg" under guidance, else "none"."""
    if guidance_scale <= 1:
        return "none"
    layout = layout_when_guided(pipe)
    if layout == "pix2pix":  # image guidance below 1 turns both guidances off
        default = inspect.signature(pipe.__call__).parameters["image_guidance_scale"].default
        return layout if options.get("image_guidance_scale", default) >= 1 else "none"
    return layout


def layout_when_guided(pipe: Any) -> str:
    """The batch layout of ``pipe`` when it guides: "pix2pix" for a pipeline taking an image
    guidance scale (InstructPix2Pix), else "cfg"."""
    return "pix2pix" if "image_guidance_scale" in inspect.signature(pipe.__call__).parameters else "cfg"


def find_cross_attention(denoiser: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, str]]:
    """``{name: (module, "cross")}`` of every cross-attention layer, found by public attributes."""
    from diffusers.models.attention_processor import Attention

    return {name: (module, "cross") for name, module in denoiser.named_modules()
            if isinstance(module, Attention) and getattr(module, "is_cross_attention", False)}


def encoder_label(kind: str, attribute: str, encoder: Any) -> str:
    """What users call an encoder: CLIP by its width (CLIP-L, CLIP-G, OpenCLIP-H), else its kind."""
    if kind == "CLIP":
        width = int(getattr(getattr(encoder, "config", None), "hidden_size", 0) or 0)
        return {768: "CLIP-L", 1280: "CLIP-G", 1024: "OpenCLIP-H"}.get(width, f"CLIP ({attribute})")
    return kind


class Family:
    """One model family; subclasses set the class attributes and override what differs.

    Attributes:
        name: short name ("sd", "sdxl", "sd3", "flux", "pixart", "sana").
        title: what users call it.
        classes: the diffusers pipeline classes of the family (by name, resolved in ``diffusers``).
        denoiser_classes: the diffusers classes of its denoising network (a recorder given the
            network alone finds its layers through them).
        denoiser: the pipeline attribute holding the denoising network.
        attention: "cross" (separate cross-attention layers), "joint" (MMDiT: one softmax over
            image and text tokens, image first) or "joint_text_first" (Flux: text first, with
            single-stream blocks after).
        num_inference_steps, guidance_scale: the defaults of the family's reference pipelines.
        roles: per text encoder, (encoder attribute, where its tokens start in the denoiser's
            context: 0, "clip" (after the CLIP window: SD3's T5) or None (pooled vector only),
            window: "tokenizer" (its ``model_max_length``) or "sequence" (``max_sequence_length``),
            kind: "CLIP", "T5" or "Gemma", naming it to users (``encoder_label``)).
        instruction_prefix: the pipeline prepends an instruction and keeps the last positions (Sana).
        timestep_scale: what the pipeline's timesteps are multiplied by to reach the scheduler's
            training range (Flux passes t / 1000).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    denoiser_classes: ClassVar[tuple[str, ...]]
    denoiser: ClassVar[str] = "unet"
    attention: ClassVar[str] = "cross"
    num_inference_steps: ClassVar[int] = 20
    guidance_scale: ClassVar[float] = 7.5
    roles: ClassVar[tuple[Role, ...]] = (("text_encoder", 0, "tokenizer", "CLIP"),)
    instruction_prefix: ClassVar[bool] = False
    timestep_scale: ClassVar[float] = 1.0

    def __repr__(self) -> str:
        return f"<family {self.name}: {self.title}>"

    # -- text ----------------------------------------------------------------------------------
    @property
    def encoders(self) -> tuple[tuple[str, str], ...]:
        """(tokenizer attribute, text-encoder attribute) of every text encoder, in order."""
        return tuple((tokenizer_attribute(attribute), attribute) for attribute, _, _, _ in self.roles)

    def text_encoders(self, pipe: Any) -> list[tuple[str, Any, Any]]:
        """(encoder attribute, tokenizer, text encoder) of every text encoder ``pipe`` has (SD3 may lack T5)."""
        out = []
        for tokenizer, encoder in self.encoders:
            tok, enc = getattr(pipe, tokenizer, None), getattr(pipe, encoder, None)
            if tok is not None and enc is not None:
                out.append((encoder, tok, enc))
        return out

    def readings(self, pipe: Any, prompt: str, options: dict[str, Any]) -> list[EncoderReading]:
        """What each text encoder ``pipe`` has reads of ``prompt`` (its words' positions in the
        denoiser's context, None for a word it cuts off), under the call's extra ``options``."""
        roles: list[tuple[str, int | None, str, str]] = []
        for attribute, offset, window, kind in self.roles:
            encoder = getattr(pipe, attribute, None)
            if encoder is None:
                continue  # SD3 saved without T5
            at = int(pipe.tokenizer_max_length) if offset == "clip" else offset
            roles.append((attribute, at if not isinstance(at, str) else None, window,
                          encoder_label(kind, attribute, encoder)))
        return read(pipe, roles, prompt, options, sana=self.instruction_prefix)

    # -- the empty_embedding perturbation --------------------------------------------------------
    def check_empty_embedding(self, adapter: Any, prompt: str) -> None:
        """Raise ValueError where this family cannot swap a word's encodings for the empty prompt's."""

    def encode(self, adapter: Any, texts: Sequence[str]) -> dict[str, Any]:
        """The pipeline's own encodings of ``texts``: keyword arguments for the conditional inputs
        (``prompt_embeds`` (n, L, D) and, by family, ``pooled_prompt_embeds`` /
        ``prompt_attention_mask``) and the negative ones (batch 1) under the adapter's guidance."""
        out = dict(prompt_embeds=adapter.encode(list(texts)))
        if adapter.guidance_scale > 1:
            out["negative_prompt_embeds"] = adapter.encode([""])
        return out

    # -- the denoiser ----------------------------------------------------------------------------
    def attention_layers(self, denoiser: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, str]]:
        """``{name: (module, kind)}`` of the layers where the image reads the text, in execution
        order; kind "cross", "joint", "joint_text_first" or "single" (``attention.joint``)."""
        return find_cross_attention(denoiser)

    def latent_grid(self, sample: torch.Tensor, kwargs: dict[str, Any]) -> tuple[tuple[int, int], int | None]:
        """((h, w) of the latent grid, image tokens of the generated image or None) read from a
        denoiser call's ``sample`` (B, C, h, w) and keyword arguments."""
        return (int(sample.shape[-2]), int(sample.shape[-1])), None

    def pixels_per_latent(self, pipe: Any) -> int:
        """Image pixels per side of one cell of the ``latent_grid`` (the VAE's factor)."""
        return int(getattr(pipe, "vae_scale_factor", 8))

    def repeats_call_for_negative(self) -> bool:
        """Whether the pipeline's guidance calls the denoiser twice a step, the prompt first (Flux's
        true CFG); the second call is the negative prompt's."""
        return False

    def batch_layout(self, pipe: Any, guidance_scale: float | None = None,
                     options: dict[str, Any] | None = None) -> str:
        """Which rows of the denoiser batch are the prompt's: "cfg", "none" or "pix2pix".

        Args:
            guidance_scale: the call's guidance, for pipelines that do not say during their call
                (no ``do_classifier_free_guidance``) whether they guide.
            options: the call's extra arguments (InstructPix2Pix's ``image_guidance_scale``).

        Called during the pipeline's call (the recorder's denoiser pre-hook).

        Raises:
            RuntimeError: when neither the pipeline nor the caller says whether it guides.
        """
        if hasattr(type(pipe), "do_classifier_free_guidance"):  # read during the call (LCM never guides)
            if not pipe.do_classifier_free_guidance:
                return "none"
            return "pix2pix" if getattr(pipe, "image_guidance_scale", None) is not None else "cfg"
        if guidance_scale is not None:  # PixArt, Sana, SDXL InstructPix2Pix decide inside __call__
            return guided_layout(pipe, guidance_scale, options or {})
        raise RuntimeError(f"{type(pipe).__name__} does not say whether its batch holds unconditional rows; "
                           "record through an adapter, or pass batch_layout='cfg' (guidance_scale > 1) or 'none'")

    # -- sampling ------------------------------------------------------------------------------
    def sampler_defaults(self, pipe: Any, defaults: PipelineDefaults) -> PipelineDefaults:
        """The defaults a pipeline of this family runs with, given its folder's (quirks of a variant)."""
        return defaults


# name -> family, and diffusers class name -> family, in registration order
FAMILIES: dict[str, Family] = {}
_BY_CLASS: dict[str, Family] = {}
_BY_DENOISER: dict[str, Family] = {}


# diffusers pipeline class name -> loader(folder, dtype=...) for pipelines diffusers cannot load itself
FOLDER_LOADERS: dict[str, Callable[..., Any]] = {}


def register_folder_loader(class_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: load folders whose ``model_index.json`` names ``class_name`` with this function."""
    def decorate(loader: Callable[..., Any]) -> Callable[..., Any]:
        FOLDER_LOADERS[class_name] = loader
        return loader

    return decorate


def register(family_class: type[Family]) -> type[Family]:
    """Class decorator: add a family, keyed by its pipeline and denoiser classes."""
    family = family_class()
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    for name in family.classes:
        _BY_CLASS.setdefault(name, family)
    for name in family.denoiser_classes:
        _BY_DENOISER.setdefault(name, family)
    return family_class


def _lookup(obj: Any, table: dict[str, Family]) -> Family | None:
    """The family whose registered diffusers class ``obj`` is an instance of (nearest in its MRO)."""
    import diffusers

    for cls in type(obj).__mro__:
        family = table.get(cls.__name__)
        if family is not None and getattr(diffusers, cls.__name__, None) is cls:
            return family
    return None


def supported() -> str:
    """The families and their pipeline classes, for error messages."""
    return ", ".join(f"{f.title} ({' / '.join(f.classes)})" for f in FAMILIES.values()) + \
        ", and Paint-by-Example (PaintByExamplePipeline, for I2AM)"


def find_family(pipe: Any) -> Family | None:
    """The family of ``pipe``'s class, or None (no checks of its components: ``family_of`` checks)."""
    return _lookup(pipe, _BY_CLASS)


def family_of(pipe: Any) -> Family:
    """The family of ``pipe``: the one one of whose diffusers classes ``pipe`` is an instance of
    (its own class or a base: a user's subclass of ``StableDiffusionPipeline`` is Stable Diffusion;
    ``StableDiffusionLDM3DPipeline``, which derives from none of them, is not).

    Raises:
        ValueError: naming the class and what is supported, for any other pipeline, and for a
            pipeline of a known family missing its denoiser or every text encoder.
    """
    name = type(pipe).__name__
    family = _lookup(pipe, _BY_CLASS)
    if family is None:
        kind = "a pipeline without text conditioning" if getattr(pipe, "text_encoder", None) is None and \
            getattr(pipe, "tokenizer", None) is None else "not a supported pipeline family"
        hint = " (Paint-by-Example: use PaintByExampleAdapter and i2am_paint_by_example)" \
            if any(c.__name__ == "PaintByExamplePipeline" for c in type(pipe).__mro__) else ""
        raise ValueError(f"{name} is {kind}{hint}; diffexplain supports {supported()}")
    if getattr(pipe, family.denoiser, None) is None:
        raise ValueError(f"{name} has no {family.denoiser}; a {family.title} pipeline needs one")
    if not family.text_encoders(pipe):
        raise ValueError(f"{name} has no text encoder and tokenizer, so it has no prompt words to explain; "
                         f"diffexplain supports {supported()}")
    return family


def family_of_denoiser(denoiser: torch.nn.Module) -> Family:
    """The family whose denoiser class ``denoiser`` is (UNets: Stable Diffusion's, whose layers SDXL shares).

    Raises:
        ValueError: for a network of no registered family.
    """
    family = _lookup(denoiser, _BY_DENOISER)
    if family is None:
        known = sorted(_BY_DENOISER)
        raise ValueError(f"{type(denoiser).__name__} has no cross-attention or joint-attention layers diffexplain "
                         f"knows: it is not the denoiser of a supported family ({', '.join(known)})")
    return family
