"""Token grounding loss for training the shapes UNet (after TokenCompose, Wang et al., CVPR 2024).

Trained on denoising alone, the shapes UNet learned to read its caption as one global summary:
its cross-attention was spatially flat (colour-word pointing game 0.08 on rendered scenes, chance)
and colour-shape binding stayed poor. Because the shapes world knows every object's exact mask, we
add TokenCompose's token loss: for each word that names an object (colour, shape, size), the share
of its cross-attention that falls inside the object's mask should be 1,

    L_ground = mean over (layer, sample, grounded token) of (1 - sum_{p in M} A_p / sum_p A_p)^2,

with A the head-averaged attention probabilities of that token over the layer's query positions
and M the object's mask area-pooled to the layer's grid. Only layers with at least
``min_pixels`` query positions take part (a 4x4 grid cannot tell a small object's place).

This makes the shipped model's attention *meant* to localise, so the attention benchmark measures
whether diffexplain's recorder and maps recover a localisation the model is known to have (a
wrong token index, a transposed grid or the unconditional CFG half would all fail it); it is not
evidence about how well attention localises in models trained without such a loss.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from diffexplain.attention import find_cross_attention
from diffexplain.attention.recorder import attention_probs
from diffexplain.tokens import word_token_spans

GROUNDED_ROLES = ("colour", "shape", "size")


def token_objects(scene, tokenizer, max_tokens: int) -> np.ndarray:
    """Object index per token position of ``scene.caption`` (-1 where the token names none).

    Returns: int8 array of shape (max_tokens,); position 0 is the BOS token.
    """
    out = np.full(max_tokens, -1, dtype=np.int8)
    for word, (start, end) in zip(scene.words, word_token_spans(tokenizer, scene.caption)):
        if word.role in GROUNDED_ROLES and word.object_index is not None:
            out[start:min(end, max_tokens)] = word.object_index
    return out


class AttentionTaps:
    """Forward pre-hooks keeping each cross-attention layer's inputs (with their graph) for one
    UNet call, so the loss can recompute the attention probabilities. Use as a context manager."""

    def __init__(self, unet, min_pixels: int = 64):
        self.modules = {name: module for name, (module, _) in find_cross_attention(unet).items()}
        self.min_pixels = min_pixels
        self.inputs: dict = {}
        self._handles: list = []

    def _hook(self, name, attn, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        if context is not None and hidden.ndim == 3 and hidden.shape[1] >= self.min_pixels:
            self.inputs[name] = (attn, hidden, context)

    def __enter__(self) -> AttentionTaps:
        self.inputs = {}
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(partial(self._hook, name), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def loss(self, masks: torch.Tensor, token_object: torch.Tensor) -> torch.Tensor:
        """TokenCompose token loss over the tapped layers.

        Args:
            masks: (B, O, H, W) float object masks at latent resolution (values in [0, 1]).
            token_object: (B, T) long, object index per context token, -1 for none.

        Returns: scalar loss (0 when no token is grounded).
        """
        valid = token_object >= 0
        if not valid.any() or not self.inputs:
            return masks.new_zeros(())
        batch, tokens = token_object.shape
        gathered = torch.gather(masks, 1, token_object.clamp(min=0).view(batch, tokens, 1, 1).expand(
            -1, -1, *masks.shape[-2:]))  # (B, T, H, W)
        losses = []
        for attn, hidden, context in self.inputs.values():
            probs = attention_probs(attn, hidden, context).mean(1)  # heads averaged: (B, HW, T)
            side = int(round(probs.shape[1] ** 0.5))
            target = F.adaptive_avg_pool2d(gathered, (side, side)).flatten(2).transpose(1, 2)  # (B, HW, T)
            ratio = (probs * target).sum(1) / probs.sum(1).clamp(min=1e-8)  # (B, T)
            losses.append(((1 - ratio) ** 2)[valid].mean())
        return torch.stack(losses).mean()
