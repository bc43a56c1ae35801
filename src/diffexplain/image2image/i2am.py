"""I2AM (Park & Jang, ICLR 2025): bidirectional attribution maps for models conditioned on a reference
image through cross-attention (Paint-by-Example, virtual try-on), and their IMACS scores.

- Reference-to-generated (R2G): the attention every generated position pays to the reference
  tokens, summed over them, aggregated over steps, heads and layers: a map over the generated
  image. With a single reference token (Paint-by-Example) the key-softmax is 1 everywhere, so
  the logits are normalised over positions instead, as the I2AM code does (the recorder's
  ``normalise="auto"``). Time-, head- and layer-level views come from ``AttentionMaps``.
- Generated-to-reference (G2R): for the generated positions in a region (all, the inpainting
  mask, or one position: the specific-reference map, SRAM), their attention averaged over the
  reference tokens, laid out on the reference's token grid: a map over the reference image.
  It needs several reference tokens on a square grid (an optional leading class token is
  dropped). With a single token (Paint-by-Example) every generated position attends to that one
  token alone, so the map over the reference is read one step earlier, inside the image encoder
  that makes the token: attention rollout (Abnar & Zuidema, 2020) from its class token to its
  patches (``encoder_g2r``).
- Guidance difference (not in I2AM): ``|pred(reference) - pred(unconditional)|`` per position,
  summed over steps (``attention.guidance``), also scored by IMACS. With one reference token the
  attention logits never reach the output (the key-softmax is 1), so training does not shape the
  R2G map; the guidance difference is read off the prediction itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..attention import AttentionMaps, AttentionRecorder
from ..attention.guidance import GuidanceRecorder
from ..metrics import imacs

if TYPE_CHECKING:
    from ..models.edit_adapter import PaintByExampleAdapter

REFERENCE = "reference"


@dataclasses.dataclass(frozen=True)
class I2AMResult:
    """Maps of one generation.

    Attributes:
        image: the generated image, uint8 (H, W, 3).
        maps: the recording; ``maps.word_heatmap("reference")`` is R2G, with ``time_view``,
            ``head_view`` and ``layer_view``.
        r2g: float32 (H, W) reference-to-generated map.
        g2r: float32 (h_ref, w_ref) generated-to-reference map over the reference image; for a
            single reference token, the image encoder's rollout (``encoder_g2r``).
        imacs_r2g: IMACS of R2G against the inpainting mask (lambda 3).
        imacs_g2r: IMACS of G2R against ``reference_mask`` when one is given, else None.
        guidance: float32 (H, W) guidance-difference map, or None without guidance (scale <= 1).
        imacs_guidance: IMACS of ``guidance`` against the inpainting mask, or None.
        guidance_time: float32 (G, H, W) the guidance difference per time group (group 0 =
            noisiest; the time-level view), or None without guidance.
        imacs_guidance_time: IMACS of each time group's map, (G,), or None.
    """

    image: np.ndarray
    maps: AttentionMaps
    r2g: np.ndarray
    g2r: np.ndarray | None
    imacs_r2g: float
    imacs_g2r: float | None
    guidance: np.ndarray | None = None
    imacs_guidance: float | None = None
    guidance_time: np.ndarray | None = None
    imacs_guidance_time: tuple[float, ...] | None = None


def record_reference_attention(pipe: Any, run: Callable[[], Any], *, n_reference_tokens: int, image_size: tuple[int,
                               int], time_groups: int = 5,
                               batch_layout: str = "cfg") -> tuple[object, AttentionMaps]:
    """Run ``run()`` (which generates one image) under an AttentionRecorder and package the maps
    with one word, "reference", spanning all ``n_reference_tokens`` context tokens."""
    with AttentionRecorder(pipe, time_groups=time_groups, batch_layout=batch_layout) as recorder:
        output = run()
    maps = AttentionMaps.from_recorder(recorder, None, [REFERENCE], image_size, words=[[REFERENCE]],
                                       spans=[[(0, n_reference_tokens)]])
    return output, maps


def g2r(maps: AttentionMaps, *, region: np.ndarray | None = None, reference_size: tuple[int, int],
        layers: Sequence[str | int] | None = None,
        time_groups: Sequence[int] | None = None) -> np.ndarray | None:
    """Generated-to-reference map: attention of the generated positions in ``region`` (bool
    (H, W) at image size; None = all) averaged over heads, steps and layers, per reference token,
    on the reference's token grid, upsampled (bicubic) to ``reference_size``. None when the
    reference is a single token."""
    names = list(maps.layers) if layers is None else [maps.layers[i] if isinstance(i, int) else i for i in layers]
    n_tokens = maps.spans[0][0][1] - maps.spans[0][0][0]
    if n_tokens < 2:
        return None
    side = math.isqrt(n_tokens)
    skip = 0 if side * side == n_tokens else 1  # a leading class token
    side = math.isqrt(n_tokens - skip)
    if side * side != n_tokens - skip:
        raise ValueError(f"{n_tokens} reference tokens do not form a square grid (with or without a class token)")
    total = torch.zeros(side * side)
    for name in names:
        means, counts = maps.means[name][0], maps.counts[name]  # (G, heads, hw, T), (G,)
        groups = list(range(len(counts))) if time_groups is None else list(time_groups)
        weights = counts[groups]
        per_layer = (means[groups] * weights.view(-1, 1, 1, 1)).sum(0) / weights.sum().clamp(min=1)
        per_layer = per_layer.mean(0)  # heads: (hw, T)
        h, w = maps.grids[name]
        if region is not None:
            small = F.interpolate(torch.from_numpy(np.asarray(region, dtype=np.float32))[None, None], size=(h, w),
                                  mode="area")[0, 0].reshape(-1)
            if small.sum() == 0:
                raise ValueError("region selects no generated position at this layer's resolution")
            per_layer = (per_layer * small[:, None]).sum(0) / small.sum()
        else:
            per_layer = per_layer.mean(0)
        total += per_layer[skip:skip + side * side]
    grid = (total / len(names)).reshape(1, 1, side, side)
    upsampled = F.interpolate(grid, size=tuple(reference_size), mode="bicubic", align_corners=False)
    return upsampled[0, 0].clamp(min=0).numpy()


def _is_self_attention(module) -> bool:
    """A transformers-style self-attention block, found by its public attributes."""
    return all(hasattr(module, a) for a in ("q_proj", "k_proj", "num_heads", "head_dim", "scale"))


def encoder_g2r(image_encoder: Any, pixel_values: torch.Tensor, reference_size: tuple[int, int]) -> np.ndarray:
    """Generated-to-reference map for a single reference token: how the image encoder's class
    token draws on the reference's patches, by attention rollout.

    Each self-attention layer's probabilities are averaged over heads, the residual path is added
    as the identity (A' = (A + I) / 2, rows renormalised), and the layers are multiplied in order;
    the class token's row over the patches is the map. The probabilities are recomputed from
    each layer's input with its own ``q_proj`` / ``k_proj`` (forward pre-hooks, removed on exit),
    so they are those of the forward pass whatever attention kernel it used.

    Args:
        image_encoder: a ``PaintByExampleImageEncoder`` (its ``model`` is a CLIP vision model).
        pixel_values: float (1, 3, h, w), the encoder's input (the pipeline's feature extractor).
        reference_size: (h_ref, w_ref) of the map, the reference image's size.

    Returns:
        float32 (h_ref, w_ref) >= 0, the patch grid upsampled (bicubic).
    """
    if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
        raise ValueError(f"pixel_values must be one image, (1, 3, h, w), got {tuple(pixel_values.shape)}")
    vision = getattr(image_encoder, "model", image_encoder)
    layers = [m for m in vision.modules() if _is_self_attention(m)]
    if not layers:
        raise ValueError("image_encoder has no self-attention layer with q_proj / k_proj: "
                         f"{type(image_encoder).__name__}")
    probabilities: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        b, t, _ = hidden.shape
        q = module.q_proj(hidden).view(b, t, module.num_heads, module.head_dim).transpose(1, 2)
        k = module.k_proj(hidden).view(b, t, module.num_heads, module.head_dim).transpose(1, 2)
        probabilities.append(((q @ k.transpose(-1, -2)) * module.scale).softmax(-1).mean(1)[0].float())

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in layers]
    try:
        with torch.no_grad():
            image_encoder(pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    n = probabilities[0].shape[-1]
    side = math.isqrt(n - 1)
    if side * side != n - 1:
        raise ValueError(f"the image encoder's {n} tokens are not a class token and a square grid of patches")
    rollout = torch.eye(n)
    for attention in probabilities:
        mixed = 0.5 * attention + 0.5 * torch.eye(n)
        rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
    grid = rollout[0, 1:].reshape(1, 1, side, side)
    upsampled = F.interpolate(grid, size=tuple(reference_size), mode="bicubic", align_corners=False)
    return upsampled[0, 0].clamp(min=0).numpy().astype(np.float32)


def _reference_pixels(pipe, reference: np.ndarray) -> torch.Tensor:
    """The image encoder's input for ``reference`` (uint8 (h, w, 3)), as the pipeline makes it."""
    from PIL import Image

    parameter = next(pipe.image_encoder.parameters())
    pixels = pipe.feature_extractor(images=Image.fromarray(reference), return_tensors="pt").pixel_values
    return pixels.to(parameter.device, parameter.dtype)


def i2am_paint_by_example(adapter: PaintByExampleAdapter, *, seed: int = 0, time_groups: int = 5,
                          reference_mask: np.ndarray | None = None, lam: float = 3.0) -> I2AMResult:
    """I2AM for a ``PaintByExampleAdapter`` generation: R2G over the generated image scored by IMACS
    against the inpainting mask, and G2R over the reference scored against ``reference_mask``
    (bool (h_ref, w_ref), the reference object's pixels) when it is given.

    Paint-by-Example's encoder returns one token, so G2R is ``encoder_g2r``'s rollout."""
    pipe = adapter.pipe
    n_tokens = 1  # PaintByExampleImageEncoder returns one embedding
    size = (adapter.height, adapter.width)
    guided = adapter.guidance_scale > 1.0  # without guidance there is no unconditional prediction
    recorder = GuidanceRecorder(pipe, time_groups=time_groups, batch_layout="cfg") if guided else None

    def run():
        with recorder if recorder is not None else contextlib.nullcontext():
            return adapter.generate([seed])[0]

    image, maps = record_reference_attention(pipe, run, n_reference_tokens=n_tokens, image_size=size,
                                             time_groups=time_groups, batch_layout="cfg" if guided else "none")
    guidance = recorder.map(size) if recorder is not None else None
    by_time = recorder.time_view(size) if recorder is not None else None
    r2g = maps.word_heatmap(REFERENCE).numpy()
    # one token: every generated position attends to it alone (``g2r`` has no grid to lay it on),
    # so the map over the reference is read in the encoder that makes the token
    reverse = encoder_g2r(pipe.image_encoder, _reference_pixels(pipe, adapter.reference), adapter.reference.shape[:2])
    imacs_g2r = None
    if reference_mask is not None:
        reference_mask = np.asarray(reference_mask)
        if reference_mask.shape != reverse.shape:
            raise ValueError(f"reference_mask must have the reference's size {reverse.shape}, "
                             f"got {reference_mask.shape}")
        imacs_g2r = imacs(reverse, reference_mask, lam)
    return I2AMResult(image=np.asarray(image), maps=maps, r2g=r2g, g2r=reverse, imacs_r2g=imacs(r2g, adapter.mask, lam),
                      imacs_g2r=imacs_g2r, guidance=guidance,
                      imacs_guidance=imacs(guidance, adapter.mask, lam) if guidance is not None else None,
                      guidance_time=by_time,
                      imacs_guidance_time=None if by_time is None else tuple(imacs(m, adapter.mask, lam)
                                                                             for m in by_time))
