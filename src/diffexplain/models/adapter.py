"""Adapters: generate from a diffusers pipeline the user built, with explicit per-sample seeds.

An adapter never loads or moves the model; it reads the device from the model's parameters.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .defaults import pipeline_defaults
from .families import family_of
from .words import context_spans, require_seen


def model_fingerprint(pipe: Any) -> str:
    """A content hash of the pipeline's configs and weights (a sample of every tensor, all shapes)."""
    digest = hashlib.sha256()
    for name, component in sorted(pipe.components.items()):
        digest.update(name.encode())
        if component is None:
            continue
        config = getattr(component, "config", None)
        if config is not None:  # diffusers FrozenDict or transformers PretrainedConfig
            as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
            # bookkeeping (paths, library versions, which defaults were used) is not content
            content = {k: v for k, v in as_dict.items()
                       if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}
            digest.update(json.dumps(content, sort_keys=True, default=str).encode())
        if isinstance(component, torch.nn.Module):
            for key, tensor in component.state_dict().items():
                flat = tensor.detach().reshape(-1)
                digest.update(f"{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
                sample = torch.cat([flat[:64], flat[-64:], flat[:: max(1, flat.numel() // 256)]])
                digest.update(sample.float().cpu().numpy().tobytes())
        elif hasattr(component, "get_vocab"):
            digest.update(json.dumps(sorted(component.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (a pipeline's ``output_type="np"``) to uint8, rounded."""
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def denoiser_of(pipe: Any) -> torch.nn.Module:
    """The pipeline's denoising network: its ``unet``, else its ``transformer``.

    Raises:
        ValueError: for a pipeline with neither.
    """
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if not isinstance(denoiser, torch.nn.Module):
        raise ValueError(f"{type(pipe).__name__} has no unet or transformer")
    return denoiser


def native_size(pipe: Any, *, stated_only: bool = False) -> tuple[int, int] | None:
    """(height, width) the pipeline generates by default: its denoiser's sample size times the VAE
    factor; Flux's transformer states none, so its pipeline's ``default_sample_size`` (None with
    ``stated_only``: such a pipeline runs at any size its latents allow)."""
    scale = getattr(pipe, "vae_scale_factor", 8)
    sample = getattr(getattr(denoiser_of(pipe), "config", None), "sample_size", None)
    if sample is None and not stated_only:
        sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        return None
    sample_h, sample_w = (sample, sample) if isinstance(sample, int) else sample
    return int(sample_h * scale), int(sample_w * scale)


# call arguments diffexplain sets itself, each from its own option
MANAGED_ARGUMENTS = {
    "prompt": "the prompt", "prompt_2": "the prompt", "prompt_3": "the prompt", "generator": "--seed / seeds",
    "num_inference_steps": "--steps", "guidance_scale": "--guidance", "height": "--height", "width": "--width",
    "output_type": "diffexplain", "return_dict": "diffexplain", "num_images_per_prompt": "--seeds",
    "image": "--image", "mask_image": "--mask", "prompt_embeds": "--perturbation",
    "pooled_prompt_embeds": "--perturbation", "latents": "--seed / seeds",
}


def check_pipeline_kwargs(pipe: Any, kwargs: dict[str, Any]) -> None:
    """Refuse extra pipeline-call arguments the pipeline does not take, that diffexplain sets
    itself, or whose type differs from the argument's default (a number for a flag, text for a number).

    Raises:
        ValueError: naming the key and, for an unknown key, the arguments the pipeline takes.
    """
    parameters = inspect.signature(pipe.__call__).parameters
    accepted = sorted(name for name, p in parameters.items()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in MANAGED_ARGUMENTS
                      and name != "self")
    for key, value in kwargs.items():
        if key in MANAGED_ARGUMENTS:
            raise ValueError(f"pipeline argument {key!r} is set by diffexplain ({MANAGED_ARGUMENTS[key]}), "
                             "not through --pipeline-arg / pipeline_kwargs")
        if key not in parameters:
            raise ValueError(f"pipeline argument {key!r} is not an argument of {type(pipe).__name__}; "
                             f"it takes: {', '.join(accepted)}")
        default = parameters[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected = type(default)
        ok = (isinstance(value, bool) if expected is bool else
              isinstance(value, int) and not isinstance(value, bool) if expected is int else
              isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else
              isinstance(value, expected))
        if not ok:
            raise ValueError(f"pipeline argument {key!r} must be {expected.__name__} like its default {default!r}, "
                             f"got {type(value).__name__} {value!r}")


class PipelineAdapter:
    """What every adapter shares: the user's pipeline, its content fingerprint and its device."""

    pipe: Any = None
    _fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.pipe)
        return self._fingerprint

    def compute_settings(self) -> dict[str, Any]:
        """Where images are computed, as far as it changes their pixels: on the CPU, torch's thread
        count (reductions split differently: values move by up to 1e-3), so a cache entry made with
        another count is never served as this one."""
        device = self.device
        return dict(device=device.type, **({"torch_threads": torch.get_num_threads()} if device.type == "cpu" else {}))

    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are (the adapter never moves them)."""
        return next(denoiser_of(self.pipe).parameters()).device

    def call_pipeline(self, seeds: Sequence[int], **inputs) -> np.ndarray:
        """Run the pipeline once with one ``torch.Generator`` per seed (on the model's device) and
        ``inputs`` as its keyword arguments; returns uint8 (len(seeds), H, W, 3)."""
        device = self.device
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        if isinstance(inputs.get("prompt"), list):  # diffusers wants one negative prompt per prompt then
            for key in ("negative_prompt", "negative_prompt_2", "negative_prompt_3"):
                if isinstance(inputs.get(key), str):
                    inputs[key] = [inputs[key]] * len(inputs["prompt"])
        with torch.no_grad():
            images = self.pipe(generator=generators, output_type="np", **inputs).images
        if not np.isfinite(images).all():  # would become black uint8 images and be scored as real ones
            raise RuntimeError(f"the pipeline returned NaN or infinite pixels for seeds {list(seeds)}; not used")
        return to_uint8(images)


class TextToImageAdapter(PipelineAdapter):
    """Generate images from a text-to-image pipeline (Stable Diffusion 1.x/2.x family, shapes).

    Args:
        pipe: a diffusers pipeline with ``tokenizer``, ``text_encoder`` and ``unet``.
        num_inference_steps: sampler steps, fixed for every generation (default: the pipeline's
            own, ``models.defaults.pipeline_defaults``).
        guidance_scale: classifier-free guidance scale (default: the pipeline's own).
        height: output height (default: the pipeline's).
        width: output width (default: the pipeline's).
        batch_size: images per pipeline call.
        vocabulary_check: optional callable(prompt) raising ValueError for words the model cannot
            take (default: the closed vocabulary the pipeline's ``diffexplain.json`` declares, if any).
    """

    takes_source = False  # EditAdapter passes the source image the pipeline needs

    def __init__(self, pipe: Any, *, num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 height: int | None = None, width: int | None = None, batch_size: int = 16,
                 vocabulary_check: Callable[[str], None] | None = None, pipeline_kwargs: dict[str, Any] | None = None):
        options = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, height=height,
                       width=width, batch_size=batch_size, vocabulary_check=vocabulary_check,
                       pipeline_kwargs=pipeline_kwargs)
        self.family = family_of(pipe)
        if not self.takes_source and "image" in inspect.signature(pipe.__call__).parameters:
            raise ValueError(f"{type(pipe).__name__} generates from a source image: wrap it in "
                             "EditAdapter(pipe, image=...) (command line: `diffexplain edit --image` or "
                             "`diffexplain attention --image`)")
        defaults = self.family.sampler_defaults(pipe, pipeline_defaults(pipe, self.family))
        num_inference_steps = defaults.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if not guidance_scale >= 0:  # also NaN
            raise ValueError(f"guidance_scale must be >= 0 (1 or less: no classifier-free guidance), "
                             f"got {guidance_scale}")
        pipeline_kwargs = {**dict(defaults.pipeline_args), **(pipeline_kwargs or {})}
        check_pipeline_kwargs(pipe, pipeline_kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.pipe = pipe
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        native = native_size(pipe) or (None, None)
        self.height = int(height or defaults.height or native[0] or 512)
        self.width = int(width or defaults.width or native[1] or 512)
        self.batch_size = int(batch_size)
        self.defaults = defaults
        self.vocabulary_check = vocabulary_check if vocabulary_check is not None else (
            None if defaults.vocabulary is None else defaults.check_vocabulary)
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        self.observers: list = []  # attention recorders told which prompts are generated
        self._options: dict[str, Any] = options  # what ``variant`` rebuilds it from

    def variant(self, pipe: Any = None, **changes: Any) -> TextToImageAdapter:
        """The same adapter with ``changes`` to its arguments (``num_inference_steps=4``), or over
        another pipeline of the same family (a cheaper one): a multi-fidelity game's cheap level.

        Raises:
            ValueError: for a pipeline of another family, or invalid changes.
        """
        pipe = self.pipe if pipe is None else pipe
        if family_of(pipe) is not self.family:
            raise ValueError(f"the cheap pipeline is {family_of(pipe).title}, not {self.family.title}: "
                             "a cheaper version must be of the same family")
        return type(self)(pipe, **{**self._options, **changes})

    # -- text ---------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.pipe.tokenizer

    @property
    def encoders(self) -> list[tuple[str, object, object]]:
        """(attribute, tokenizer, text encoder) of every text encoder the pipeline has, in order."""
        return self.family.text_encoders(self.pipe)

    def readings(self, prompt: str) -> list:
        """What each text encoder reads of ``prompt`` (``words.EncoderReading``: its words' positions
        in the denoiser's context, None where it cuts a word off), under this adapter's call arguments."""
        return self.family.readings(self.pipe, prompt, self.pipeline_kwargs)

    def words(self, prompt: str) -> list[str]:
        """The features of a prompt: its whitespace-separated words, after validation.

        Raises:
            ValueError: for an empty prompt, a word outside a closed vocabulary, and words no text
                encoder reads (past every encoder's window); words only some encoders cut off (a
                long prompt's CLIP on SD3 / Flux, as diffusers truncates it) are kept: see
                ``coverage``.
        """
        self._validated_readings(prompt)
        return prompt.split()

    def _validated_readings(self, prompt: str) -> list:
        """``readings`` of a prompt that ``words`` accepts (its checks, then the readings they used)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
        if self.vocabulary_check is not None:
            self.vocabulary_check(prompt)
        readings = self.readings(prompt)
        require_seen(prompt.split(), readings, prompt)
        return readings

    def context_spans(self, prompt: str) -> list[tuple[int, int]]:
        """Each word's [start, end) positions in the denoiser's text context that its attention maps
        are read from: the last encoder with positions there (SD3: T5, or CLIP without it; Flux: T5;
        Sana: after its instruction prefix).

        Raises:
            ValueError: naming the words that encoder cuts off (they have no attention).
        """
        return context_spans(self._validated_readings(prompt), prompt)

    def coverage(self, prompt: str) -> list[str]:
        """One line per text encoder saying which words it read ("CLIP-L (pooled) saw words 1-75 of 100")."""
        words = prompt.split()
        return [reading.describe(words) for reading in self.readings(prompt)]

    def word_token_spans(self, prompt: str) -> list[tuple[int, int]]:
        """For each word of the validated prompt, the [start, end) positions of its sub-tokens in the
        first tokenizer's encoded prompt (CLIP: position 0 is BOS)."""
        first = self._validated_readings(prompt)[0]
        if any(span is None for span in first.spans):
            raise ValueError(f"{first.label} cuts off words of {prompt!r}: they have no token positions there")
        return [tuple(span) for span in first.spans]

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text-encoder output for prompts, padded to the context length: (n, L, D)."""
        device = next(self.pipe.text_encoder.parameters()).device
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
        return self.pipe.text_encoder(ids)[0]

    def word_embeddings(self, prompt: str) -> np.ndarray:
        """Each word's input (token-table) embedding, averaged over its sub-tokens: (n_words, D)."""
        table = self.pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
        return np.stack([table[self.tokenizer(w, add_special_tokens=False).input_ids].mean(axis=0)
                         for w in self.words(prompt)])

    # -- generation ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Every sampler setting that changes an image (part of the cache key)."""
        return dict(num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                    height=self.height, width=self.width, scheduler=type(self.pipe.scheduler).__name__,
                    scheduler_config=dict(self.pipe.scheduler.config), **self.compute_settings(),
                    **self.pipeline_kwargs)

    def _run(self, seeds: Sequence[int], **inputs) -> np.ndarray:
        return self.call_pipeline(seeds, num_inference_steps=self.num_inference_steps,
                                  guidance_scale=self.guidance_scale, height=self.height, width=self.width,
                                  **inputs, **self.pipeline_kwargs)

    def run_batches(self, seeds: Sequence[int], inputs: Callable[[slice], dict[str, Any]]) -> np.ndarray:
        """One image per seed, in batches of ``batch_size``: ``inputs(rows)`` gives the pipeline
        keyword arguments of the rows ``rows`` (a slice of ``seeds``); uint8 (n, H, W, 3)."""
        seeds = list(seeds)
        out = [self._run(seeds[i:i + self.batch_size], **inputs(slice(i, i + self.batch_size)))
               for i in range(0, len(seeds), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.height, self.width, 3), np.uint8)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """One image per (prompt, seed): uint8 (n, H, W, 3), in batches of ``batch_size``."""
        if len(prompts) != len(seeds):
            raise ValueError(f"prompts and seeds must have the same length, got {len(prompts)} and {len(seeds)}")
        prompts = list(prompts)
        for observer in list(self.observers):
            observer.saw_prompts(prompts)
        return self.run_batches(seeds, lambda rows: dict(prompt=prompts[rows]))
