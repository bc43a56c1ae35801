"""Record image-to-text attention probabilities with standard PyTorch forward hooks.

The recorder observes, it never replaces: a forward pre-hook on every cross-attention
``Attention`` module (UNets, PixArt / Sana DiTs) recomputes softmax(Q K^T / sqrt(d)) in float32
from the module's own ``to_q`` / ``to_k`` projections, norms, scale and padding mask, while the
installed attention processor (SDPA, xformers, ...) still produces the output. MMDiT joint
attention (SD3, Flux) is read the same way by ``joint.py``. Images are therefore bit-identical
with and without recording; the cost is one extra Q.K^T product per layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .maps import AttentionMaps

BATCH_LAYOUTS = ("auto", "cfg", "none", "pix2pix")
NORMALISATIONS = ("auto", "keys", "queries")


def attention_probs(attn: Any, hidden: torch.Tensor, context: torch.Tensor, *, over_queries: bool = False,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Recompute a cross-attention layer's probabilities from its own projections, in float32
    whatever the model's dtype (a bfloat16 softmax keeps 3 significant digits).

    Args:
        attn: a diffusers ``Attention`` module.
        hidden: (B, N, C) query-side input, as the layer receives it.
        context: (B, T, C_ctx) encoder hidden states.
        over_queries: softmax over the N positions instead of the T keys (I2AM, one-token contexts).
        mask: the layer's additive ``attention_mask`` (B, 1, T), e.g. PixArt's -10000 on T5 padding.

    Returns: (B, heads, N, T) probabilities.
    """
    if attn.norm_cross is not None:
        context = attn.norm_encoder_hidden_states(context)
    query, key, heads = attn.to_q(hidden), attn.to_k(context), attn.heads
    if attn.norm_q is not None or attn.norm_k is not None:
        query, key = query.unflatten(-1, (heads, -1)), key.unflatten(-1, (heads, -1))
        query = attn.norm_q(query) if attn.norm_q is not None else query
        key = attn.norm_k(key) if attn.norm_k is not None else key
        query, key = query.flatten(-2), key.flatten(-2)
    query, key = attn.head_to_batch_dim(query), attn.head_to_batch_dim(key)
    logits = torch.bmm(query.float(), key.float().transpose(1, 2)) * attn.scale
    if mask is not None:
        logits = logits + attn.prepare_attention_mask(mask, key.shape[1], hidden.shape[0]).float()
    probs = logits.softmax(dim=1 if over_queries else -1)
    return probs.reshape(hidden.shape[0], heads, probs.shape[-2], probs.shape[-1])


@dataclasses.dataclass
class _LayerAccumulator:
    grid: tuple[int, int]
    sums: torch.Tensor  # (B, G, heads, h*w, tokens), float32
    counts: torch.Tensor  # (G,)
    steps: list  # per-step (B, heads, h*w, tokens) tensors when keep_steps


def layer_grid(n_pixels: int, height: int, width: int) -> tuple[int, int]:
    """The (h, w) grid of a layer with ``n_pixels`` queries in a UNet fed (height, width) latents."""
    factor = math.sqrt(height * width / n_pixels)
    for rounding in (math.ceil, math.floor, round):
        h, w = rounding(height / factor), rounding(width / factor)
        if h * w == n_pixels:
            return int(h), int(w)
    raise RuntimeError(f"cannot place {n_pixels} queries on a grid for latents of {height}x{width}")


def time_group(t: float, num_train_timesteps: int, time_groups: int) -> int:
    """The time group of timestep ``t``: [0, num_train_timesteps) split into ``time_groups`` equal
    ranges, group 0 = the noisiest (t near num_train_timesteps - 1)."""
    fraction = (num_train_timesteps - 1 - t) / num_train_timesteps
    return min(time_groups - 1, max(0, int(fraction * time_groups)))


class AttentionRecorder:
    """Context manager recording image-to-text attention maps of a model's layers.

    Keeps running sums per (layer, time group, head) so memory does not grow with the number of
    steps; ``keep_steps=True`` also keeps every step. Time groups split the training timesteps
    [0, num_train_timesteps) into ``time_groups`` equal ranges, group 0 = the noisiest. The
    model's family (``models.families``) says which layers to hook, how to read the denoiser's
    inputs and which rows of a guided batch are the prompt's.

    Args:
        source: an adapter (``TextToImageAdapter`` / ``EditAdapter``: the recorder then sees the
            prompts the adapter generates, keeps their word tokens only, and ``maps()`` needs no
            argument), a diffusers pipeline, or its denoiser alone.
        time_groups: number of time groups (the I2AM paper uses 5 over 50 steps).
        keep_steps: also keep each step's maps.
        batch_layout: which rows of the denoiser batch are conditional: "auto" (the family's rule:
            the pipeline's ``do_classifier_free_guidance`` during its call, else the adapter's
            guidance; every row for a bare denoiser), "cfg" (second half), "none" (all rows),
            "pix2pix" (first third, InstructPix2Pix's [text+image, image, none]).
        num_train_timesteps: the scheduler's training range (default: read from the pipeline).
        normalise: "keys" (softmax over the context tokens: the attention probabilities),
            "queries" (softmax of the same logits over the spatial axis: with a single context
            token, as Paint-by-Example's reference embedding, key-softmax is 1 everywhere, so
            I2AM normalises over positions instead) or "auto" (queries for one-token contexts).
        tokens: keep only context positions [start, stop) (the probabilities are still normalised
            over every key): an MMDiT's context is hundreds of tokens (SD3: 77 CLIP + 256 T5), and
            per-head, per-time-group sums over all of them would not fit. Default: with an adapter,
            the generated prompts' word tokens; otherwise every position.

    Example:
        >>> with AttentionRecorder(adapter) as recorder:
        ...     image = adapter.generate([prompt], [seed])[0]
        >>> maps = recorder.maps()
    """

    def __init__(self, source: Any, *, time_groups: int = 5, keep_steps: bool = False,
                 batch_layout: str = "auto", num_train_timesteps: int | None = None, normalise: str = "auto",
                 tokens: tuple[int, int] | None = None):
        from ..models.families import family_of_denoiser, find_family

        self.adapter = source if hasattr(source, "pipe") and hasattr(source, "family") else None
        pipe = self.adapter.pipe if self.adapter is not None else (
            None if isinstance(source, torch.nn.Module) else source)
        unet = source if pipe is None else (getattr(pipe, "unet", None) or getattr(pipe, "transformer", None))
        if not isinstance(unet, torch.nn.Module):
            raise ValueError("source must be an adapter, a pipeline with a unet or transformer, or the denoiser "
                             f"module, got {type(source).__name__}")
        if time_groups < 1:
            raise ValueError(f"time_groups must be >= 1, got {time_groups}")
        if batch_layout not in BATCH_LAYOUTS:
            raise ValueError(f"batch_layout must be one of {BATCH_LAYOUTS}, got {batch_layout!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        self.normalise = normalise
        self.pipe = pipe
        self.unet = unet
        # the pipeline's family where it has one (Paint-by-Example has none: its UNet's is used,
        # and its batch layout must be given)
        self.pipe_family = self.adapter.family if self.adapter is not None else (
            find_family(pipe) if pipe is not None else None)
        self.family = self.pipe_family or family_of_denoiser(unet)
        found = self.family.attention_layers(unet)
        self.layers = {name: module for name, (module, _) in found.items()}
        self.kinds = {name: kind for name, (_, kind) in found.items()}
        if not self.layers:
            raise ValueError(f"{type(unet).__name__} has no cross-attention or joint-attention layers to record")
        if batch_layout == "auto" and pipe is None:
            batch_layout = "none"
        if batch_layout == "auto" and self.pipe_family is None:
            raise ValueError(f"{type(pipe).__name__} is of no supported family: pass batch_layout "
                             "('cfg' under guidance, else 'none')")
        self.batch_layout = batch_layout
        self._layout: str | None = None if batch_layout == "auto" else batch_layout
        self.time_groups = time_groups
        self.keep_steps = keep_steps
        if tokens is not None and not (len(tokens) == 2 and 0 <= int(tokens[0]) < int(tokens[1])):
            raise ValueError(f"tokens must be (start, stop) with 0 <= start < stop, got {tokens!r}")
        self.tokens = None if tokens is None else (int(tokens[0]), int(tokens[1]))
        self._tokens_given = tokens is not None
        self.context_len = 0  # context positions the layers saw (before ``tokens`` keeps some)
        if num_train_timesteps is None:
            scheduler = getattr(self.pipe, "scheduler", None)
            num_train_timesteps = scheduler.config.num_train_timesteps if scheduler is not None else 1000
        self.num_train_timesteps = int(num_train_timesteps)
        self.prompts: list[str] = []  # what the adapter generated while recording
        self._spans: list[list[tuple[int, int]]] = []
        self._handles: list = []
        self._latent_hw: tuple[int, int] | None = None
        self._text_len = 0
        self._image_tokens: int | None = None
        self._group = 0
        self._timesteps: list[int] = []
        self._skip_call = False
        self._last_t: float | None = None
        self.accumulators: dict[str, _LayerAccumulator] = {}

    def saw_prompts(self, prompts: Sequence[str]) -> None:
        """Called by the adapter before it generates ``prompts`` inside the ``with`` block: the
        recorder locates their words (and, unless ``tokens`` was given, keeps only their tokens).

        Raises:
            ValueError: for words an encoder cuts off (they have no attention), before any step runs.
        """
        assert self.adapter is not None  # only adapters call it
        spans = [self.adapter.context_spans(p) for p in prompts]
        self.prompts.extend(prompts)
        self._spans.extend(spans)
        if not self._tokens_given:
            self.tokens = (min(s[0][0] for s in self._spans), max(s[-1][1] for s in self._spans))

    # -- hooks ----------------------------------------------------------------------------------
    def _conditional_rows(self, batch: int) -> slice:
        from ..models.families import conditional_rows

        if self._layout is None:  # "auto": the family's rule, read once per denoiser call
            assert self.pipe_family is not None  # refused at construction otherwise
            adapter = self.adapter
            self._layout = self.pipe_family.batch_layout(
                self.pipe, None if adapter is None else adapter.guidance_scale,
                None if adapter is None else adapter.pipeline_kwargs)
        return conditional_rows(self._layout, batch)

    def _unet_pre_hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        t = float(torch.as_tensor(timestep).reshape(-1)[0]) * self.family.timestep_scale
        # a family whose guidance calls the denoiser twice a step (Flux's true CFG) runs the prompt
        # first: the second call at the same timestep is the negative prompt's, not the prompt's
        self._skip_call = bool(self.family.repeats_call_for_negative() and self._timesteps and self._last_t == t)
        self._last_t = t
        if self._skip_call:
            return
        self._latent_hw, self._image_tokens = self.family.latent_grid(sample, kwargs)
        if self.batch_layout == "auto":
            self._layout = None  # re-read at this call's first layer (the pipeline may say during its call)
        context = kwargs.get("encoder_hidden_states")
        self._text_len = int(context.shape[1]) if context is not None else 0
        self._group = time_group(t, self.num_train_timesteps, self.time_groups)
        self._timesteps.append(int(round(t)))

    @torch.no_grad()
    def _attention_pre_hook(self, name: str, attn, args, kwargs):
        if self._skip_call:
            return
        hidden = args[0] if args else kwargs["hidden_states"]
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        kind = self.kinds[name]
        if (context is None and kind != "single") or hidden.ndim != 3:
            return
        batch = hidden.shape[0]
        rows = self._conditional_rows(batch)  # project only the rows kept: half the extra work under CFG
        hidden = hidden[rows]
        keep = slice(*self.tokens) if self.tokens is not None else slice(None)
        if kind == "cross":
            context = context[rows]
            mask = kwargs.get("attention_mask")
            mask = mask[rows] if mask is not None and mask.shape[0] == batch else mask
            over_queries = self.normalise == "queries" or (self.normalise == "auto" and context.shape[1] == 1)
            self.context_len = int(context.shape[1])
            probs = attention_probs(attn, hidden, context, over_queries=over_queries, mask=mask)[..., keep].cpu()
        else:
            from .joint import image_to_text_probs, joint_query_key

            context = context[rows] if context is not None else None
            q_img, k_img, k_txt = joint_query_key(attn, kind, hidden, context, kwargs.get("image_rotary_emb"),
                                                  self._text_len, n_query=self._image_tokens)
            self.context_len = int(k_txt.shape[2])
            probs = image_to_text_probs(q_img, k_img, k_txt, q_img.shape[-1] ** -0.5, keep=keep).cpu()
        self._accumulate(name, probs)

    def _accumulate(self, name: str, probs: torch.Tensor) -> None:
        """Add one call's (B, heads, N, T kept) float32 maps to layer ``name``'s running sums."""
        if self.tokens is not None and probs.shape[-1] != self.tokens[1] - self.tokens[0]:
            raise ValueError(f"tokens={self.tokens} reaches past the {self.context_len} context positions "
                             f"of layer {name}")
        acc = self.accumulators.get(name)
        if acc is None:
            assert self._latent_hw is not None  # set by the denoiser's pre-hook before any layer runs
            grid = layer_grid(probs.shape[2], *self._latent_hw)
            acc = _LayerAccumulator(grid=grid, sums=torch.zeros(probs.shape[0], self.time_groups, *probs.shape[1:]),
                                    counts=torch.zeros(self.time_groups), steps=[])
            self.accumulators[name] = acc
        if acc.sums.shape[0] != probs.shape[0] or acc.sums.shape[2:] != probs.shape[1:]:
            raise RuntimeError(f"layer {name} changed shape between calls ({tuple(acc.sums.shape)} vs "
                               f"{tuple(probs.shape)}); use one recorder per generation call")
        acc.sums[:, self._group] += probs
        acc.counts[self._group] += 1
        if self.keep_steps:
            acc.steps.append(probs.clone())

    def __enter__(self) -> AttentionRecorder:
        self.accumulators = {}
        self._timesteps = []
        self._skip_call, self._last_t = False, None
        self.prompts, self._spans = [], []
        if not self._tokens_given:
            self.tokens = None
        try:
            self._handles.append(self.unet.register_forward_pre_hook(self._unet_pre_hook, with_kwargs=True))
            self._register_layer_hooks()
            if self.adapter is not None:
                self.adapter.observers.append(self)
        except BaseException:
            self.remove_hooks()
            raise
        return self

    def _register_layer_hooks(self) -> None:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(
                lambda m, a, k, _name=name: self._attention_pre_hook(_name, m, a, k), with_kwargs=True))

    def remove_hooks(self) -> None:
        """Remove every hook (and stop observing the adapter); safe to call twice."""
        while self._handles:
            self._handles.pop().remove()
        if self.adapter is not None and self in self.adapter.observers:
            self.adapter.observers.remove(self)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.remove_hooks()

    # -- results --------------------------------------------------------------------------------
    @property
    def timesteps(self) -> list[int]:
        """The timestep of every UNet call seen while recording."""
        return list(self._timesteps)

    def maps(self, prompts: Sequence[str] | None = None, *, image_size: tuple[int, int] | None = None,
             pipeline_kwargs: dict[str, Any] | None = None) -> AttentionMaps:
        """Package the recording as ``AttentionMaps``, one per batch row.

        Args:
            prompts: the prompts of the recorded batch, in order (default: those the adapter
                generated; needed when the pipeline was called directly).
            image_size: (height, width) of the generated images (default: the adapter's, else the
                latent grid times the pipeline's VAE factor).
            pipeline_kwargs: the extra arguments of a direct pipeline call that change how the
                prompt is read (``max_sequence_length``...); an adapter knows its own.

        Raises:
            ValueError: for a bare denoiser (it sees no prompts: use ``AttentionMaps.from_recorder``
                with the tokenizer), without prompts, or for words an encoder cut off.
        """
        from ..models.words import context_spans
        from .maps import AttentionMaps

        if not self.accumulators:
            raise RuntimeError("nothing was recorded: run the pipeline inside the `with` block")
        if self.pipe is None or self.pipe_family is None:
            raise ValueError("a recorder on a bare denoiser (or a pipeline of no text family) cannot locate words: "
                             "use AttentionMaps.from_recorder(recorder, tokenizer, prompts, image_size)")
        if prompts is None:
            if not self.prompts:
                raise ValueError("no prompts were seen: record through an adapter, or pass the prompts")
            prompts, spans = list(self.prompts), list(self._spans)
        elif self.adapter is not None:
            prompts, spans = list(prompts), [self.adapter.context_spans(p) for p in prompts]
        else:
            options = dict(pipeline_kwargs or {})
            prompts = list(prompts)
            spans = [context_spans(self.pipe_family.readings(self.pipe, p, options), p) for p in prompts]
        if image_size is None:
            if self.adapter is not None:
                image_size = (self.adapter.height, self.adapter.width)
            else:
                assert self._latent_hw is not None
                scale = self.family.pixels_per_latent(self.pipe)
                image_size = (self._latent_hw[0] * scale, self._latent_hw[1] * scale)
        return AttentionMaps.from_recorder(self, None, prompts, image_size, words=[p.split() for p in prompts],
                                           spans=spans)
