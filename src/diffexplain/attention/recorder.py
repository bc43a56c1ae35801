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
import inspect
import math
from typing import Optional

import torch

BATCH_LAYOUTS = ("auto", "cfg", "none", "pix2pix")
NORMALISATIONS = ("auto", "keys", "queries")


def find_cross_attention(unet) -> dict[str, torch.nn.Module]:
    """Cross-attention modules of a UNet, by public attributes (never by block indices)."""
    from diffusers.models.attention_processor import Attention

    found = {name: module for name, module in unet.named_modules()
             if isinstance(module, Attention) and getattr(module, "is_cross_attention", False)}
    return found


def attention_probs(attn, hidden: torch.Tensor, context: torch.Tensor, *, over_queries: bool = False,
                    mask: Optional[torch.Tensor] = None) -> torch.Tensor:
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
    """Context manager recording cross-attention maps of a pipeline's (or a UNet's) layers.

    Keeps running sums per (layer, time group, head) so memory does not grow with the number of
    steps; ``keep_steps=True`` also keeps every step. Time groups split the training timesteps
    [0, num_train_timesteps) into ``time_groups`` equal ranges, group 0 = the noisiest.

    Args:
        pipe_or_unet: a diffusers pipeline with a ``unet`` or ``transformer``, or the denoiser itself.
        time_groups: number of time groups (the I2AM paper uses 5 over 50 steps).
        keep_steps: also keep each step's maps.
        batch_layout: which rows of the UNet batch are conditional: "auto" (the pipeline's
            ``do_classifier_free_guidance``: the first third for InstructPix2Pix pipelines, the second
            half for others; all rows without guidance), "cfg" (second half), "none" (all rows),
            "pix2pix" (first third, InstructPix2Pix's [text+image, image, none]).
        num_train_timesteps: the scheduler's training range (default: read from the pipeline).
        normalise: "keys" (softmax over the context tokens: the attention probabilities),
            "queries" (softmax of the same logits over the spatial axis: with a single context
            token, as Paint-by-Example's reference embedding, key-softmax is 1 everywhere, so
            I2AM normalises over positions instead) or "auto" (queries for one-token contexts).
        tokens: keep only context positions [start, stop) (the probabilities are still normalised
            over every key): an MMDiT's context is hundreds of tokens (SD3: 77 CLIP + 256 T5), and
            per-head, per-time-group sums over all of them would not fit; ``record_prompt`` keeps
            the prompt's word tokens.

    Example:
        >>> with AttentionRecorder(pipe) as recorder:
        ...     image = pipe(prompt, generator=generator).images[0]
        >>> maps = recorder.maps(pipe.tokenizer, [prompt], image_size=(512, 512))
    """

    def __init__(self, pipe_or_unet, *, time_groups: int = 5, keep_steps: bool = False,
                 batch_layout: str = "auto", num_train_timesteps: Optional[int] = None, normalise: str = "auto",
                 tokens: Optional[tuple[int, int]] = None):
        from .joint import find_joint_attention

        unet = getattr(pipe_or_unet, "unet", None) or getattr(pipe_or_unet, "transformer", None) or pipe_or_unet
        if not isinstance(unet, torch.nn.Module):
            raise ValueError("pipe_or_unet must be a pipeline with a unet or transformer, or the denoiser module, "
                             f"got {type(pipe_or_unet).__name__}")
        if time_groups < 1:
            raise ValueError(f"time_groups must be >= 1, got {time_groups}")
        if batch_layout not in BATCH_LAYOUTS:
            raise ValueError(f"batch_layout must be one of {BATCH_LAYOUTS}, got {batch_layout!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        self.normalise = normalise
        self.pipe = pipe_or_unet if pipe_or_unet is not unet else None
        self.unet = unet
        self.layers = find_cross_attention(unet)
        self.kinds = {name: "cross" for name in self.layers}
        for name, (module, kind) in find_joint_attention(unet).items():
            self.layers[name], self.kinds[name] = module, kind
        if not self.layers:
            raise ValueError(f"{type(unet).__name__} has no cross-attention or joint-attention layers to record")
        # Flux's pipeline passes timestep / 1000 and packs latents into a token sequence
        self._timestep_scale = 1000.0 if "Flux" in type(unet).__name__ else 1.0
        if batch_layout == "auto" and self.pipe is None:
            batch_layout = "none"
        self.batch_layout = batch_layout
        self.time_groups = time_groups
        self.keep_steps = keep_steps
        if tokens is not None and not (len(tokens) == 2 and 0 <= int(tokens[0]) < int(tokens[1])):
            raise ValueError(f"tokens must be (start, stop) with 0 <= start < stop, got {tokens!r}")
        self.tokens = None if tokens is None else (int(tokens[0]), int(tokens[1]))
        self.context_len = 0  # context positions the layers saw (before ``tokens`` keeps some)
        if num_train_timesteps is None:
            scheduler = getattr(self.pipe, "scheduler", None)
            num_train_timesteps = scheduler.config.num_train_timesteps if scheduler is not None else 1000
        self.num_train_timesteps = int(num_train_timesteps)
        self._handles: list = []
        self._latent_hw: Optional[tuple[int, int]] = None
        self._text_len = 0
        self._image_tokens: Optional[int] = None
        self._group = 0
        self._timesteps: list[int] = []
        self._skip_call = False
        self._last_t: Optional[float] = None
        self.accumulators: dict[str, _LayerAccumulator] = {}

    # -- hooks ----------------------------------------------------------------------------------
    def _conditional_rows(self, batch: int) -> slice:
        layout = self.batch_layout
        if layout == "auto":
            if hasattr(type(self.pipe), "do_classifier_free_guidance"):
                layout = "cfg" if self.pipe.do_classifier_free_guidance else "none"
                if layout == "cfg" and hasattr(self.pipe, "image_guidance_scale"):
                    layout = "pix2pix"  # InstructPix2Pix guides on text and image: [text+image, image, none]
            elif "Flux" in type(self.pipe).__name__:
                layout = "none"  # guidance-distilled: one row per image (true CFG runs separate calls)
            else:
                raise RuntimeError(f"{type(self.pipe).__name__} does not say whether its batch holds unconditional "
                                   "rows; pass batch_layout='cfg' (guidance_scale > 1) or 'none'")
        if layout == "cfg":
            if batch % 2:
                raise RuntimeError(f"batch_layout 'cfg' needs an even UNet batch, got {batch}")
            return slice(batch // 2, batch)
        if layout == "pix2pix":
            if batch % 3:
                raise RuntimeError(f"batch_layout 'pix2pix' needs a UNet batch divisible by 3, got {batch}")
            return slice(0, batch // 3)
        return slice(0, batch)

    def _unet_pre_hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        t = float(torch.as_tensor(timestep).reshape(-1)[0]) * self._timestep_scale
        self._image_tokens = None
        # Flux's true CFG calls the transformer a second time at the same timestep, with the negative
        # prompt (the conditional call comes first): that call is not the prompt's attention
        self._skip_call = bool(sample.ndim == 3 and self._timesteps and self._last_t == t)
        self._last_t = t
        if self._skip_call:
            return
        if sample.ndim == 3:  # packed tokens (Flux): the grid is in the image ids
            ids = kwargs["img_ids"]
            ids = ids[0] if ids.ndim == 3 else ids
            generated = ids[ids[:, 0] == 0]  # Kontext appends its reference image with ids[:, 0] == 1
            self._image_tokens = int(generated.shape[0])
            self._latent_hw = (int(generated[:, 1].max()) + 1, int(generated[:, 2].max()) + 1)
        else:
            self._latent_hw = (int(sample.shape[-2]), int(sample.shape[-1]))
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

    def __enter__(self) -> "AttentionRecorder":
        self.accumulators = {}
        self._timesteps = []
        self._skip_call, self._last_t = False, None
        try:
            self._handles.append(self.unet.register_forward_pre_hook(self._unet_pre_hook, with_kwargs=True))
            self._register_layer_hooks()
        except BaseException:
            self.remove_hooks()
            raise
        return self

    def _register_layer_hooks(self) -> None:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(
                lambda m, a, k, _name=name: self._attention_pre_hook(_name, m, a, k), with_kwargs=True))

    def remove_hooks(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.remove_hooks()

    # -- results --------------------------------------------------------------------------------
    @property
    def timesteps(self) -> list[int]:
        """The timestep of every UNet call seen while recording."""
        return list(self._timesteps)

    def maps(self, tokenizer, prompts, *, image_size: tuple[int, int], offset: int = 0, spans=None):
        """Package the recording as ``AttentionMaps`` for these prompts (one per batch row).

        Args:
            tokenizer: the tokenizer whose tokens the words' maps are read from (to locate each
                word's sub-tokens).
            prompts: the prompts of the recorded batch, in order.
            image_size: (height, width) of the generated images.
            offset: where that tokenizer's tokens start in the text context (SD3's T5: 77).
            spans: each prompt's words' [start, end) context positions, when the tokenizer alone
                cannot tell them (Sana's instruction prefix: ``families.located_word_spans``).
        """
        from .maps import AttentionMaps

        if not self.accumulators:
            raise RuntimeError("nothing was recorded: run the pipeline inside the `with` block")
        words = None if spans is None else [p.split() for p in prompts]
        return AttentionMaps.from_recorder(self, tokenizer, list(prompts), image_size, offset=offset, words=words,
                                           spans=spans)


def record_prompt(adapter, prompt: str, seed: int, *, view: str = "attention"):
    """Generate ``prompt`` with ``seed`` while recording cross-attention.

    Args:
        adapter: a ``TextToImageAdapter`` (or ``EditAdapter``); the prompt is validated by its ``words``.
        prompt: the text.
        seed: the generation's seed.
        view: "attention" (the attention probabilities) or "output" (output-space maps of
            MMDiT joint blocks, after ConceptAttention: ``concept.ConceptAttentionRecorder``).

    Returns:
        (image uint8 (H, W, 3), ``AttentionMaps`` of that generation).
    """
    if view not in ("attention", "output"):
        raise ValueError(f"view must be 'attention' or 'output', got {view!r}")
    adapter.words(prompt)
    pipe = adapter.pipe
    layout = "auto"
    if not hasattr(type(pipe), "do_classifier_free_guidance") and adapter.family.name != "flux":
        # PixArt and SDXL InstructPix2Pix decide inside __call__, from the same arguments
        parameters = inspect.signature(pipe.__call__).parameters
        guided = adapter.guidance_scale > 1
        if "image_guidance_scale" in parameters:
            image_guidance = adapter.pipeline_kwargs.get("image_guidance_scale",
                                                         parameters["image_guidance_scale"].default)
            layout = "pix2pix" if guided and image_guidance >= 1 else "none"
        else:
            layout = "cfg" if guided else "none"
    spans = adapter.context_spans(prompt)
    if view == "output":
        from .concept import ConceptAttentionRecorder as recorder_class
    else:
        recorder_class = AttentionRecorder
    kept = (spans[0][0], spans[-1][1])
    with recorder_class(pipe, batch_layout=layout, tokens=kept) as recorder:
        image = adapter.generate([prompt], [seed])[0]
    return image, recorder.maps(None, [prompt], image_size=(adapter.height, adapter.width), spans=[spans])
