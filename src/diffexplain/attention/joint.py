"""Image-to-text attention of MMDiT joint attention (SD3, Flux), recomputed from the block's own
projections, norms and rotary embedding.

In joint attention one softmax runs over the image and text keys together. The image-query ->
text-key block of that softmax is what a word's map is made of; it needs each query's normaliser
over *all* keys, image keys included. The normaliser is computed block by block over the queries
(logsumexp), so the image x image matrix is never held whole: memory per query block is
block x (image tokens + text tokens), the block sized to hold about 16 MiB of logits.

Three kinds of layer (each family locates its own: ``models.families``):
- "joint": an SD3 ``Attention`` with added key / value projections (image tokens first);
- "joint_text_first": a Flux double-stream block's ``attn`` (text tokens first, rotary embedding);
- "single": a Flux single-stream block's ``attn``, fed the concatenated [text; image] sequence.
"""

from __future__ import annotations

from typing import Any

import torch

# logits held at once, per query block: about 16 MiB of float32
BLOCK_FLOATS = 1 << 22


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, S, heads * d) -> (B, S, heads, d)."""
    return x.unflatten(-1, (heads, -1))


def _norm(module, x: torch.Tensor) -> torch.Tensor:
    return module(x) if module is not None else x


def _rotate(x: torch.Tensor, rotary, start: int, stop: int) -> torch.Tensor:
    """Apply the block's rotary embedding (cos, sin) of positions [start, stop) to x (B, S, heads, d)."""
    if rotary is None:
        return x
    from diffusers.models.embeddings import apply_rotary_emb

    cos, sin = rotary
    rotated = apply_rotary_emb(x, (cos[start:stop], sin[start:stop]), sequence_dim=1)  # type: ignore[arg-type]
    # one tensor when given one (use_real); the stub also covers the (cos, sin) form
    return rotated  # type: ignore[return-value]


def joint_query_key(attn: Any, kind: str, hidden: torch.Tensor, context: torch.Tensor | None, rotary: Any,
                    text_len: int,
                    n_query: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The image queries, image keys and text keys exactly as the layer's processor forms them.

    Args:
        attn: the attention module.
        kind: "joint", "joint_text_first" or "single".
        hidden: the layer's ``hidden_states`` input: (B, N, C) image tokens, or (B, T + N, C) for "single".
        context: the layer's ``encoder_hidden_states`` (B, T, C_ctx), None for "single".
        rotary: the layer's ``image_rotary_emb`` (cos, sin) over [text; image] positions, or None.
        text_len: T, the text tokens (needed for "single").
        n_query: keep only the first ``n_query`` image queries (Flux Kontext appends the reference
            image's tokens: they are keys of the softmax, not pixels of the generated image).

    Returns:
        (image queries (B, heads, n_query, d), image keys (B, heads, N, d), text keys (B, heads, T, d)).
    """
    heads = attn.heads
    if kind == "single":
        query = _norm(attn.norm_q, _heads(attn.to_q(hidden), heads))
        key = _norm(attn.norm_k, _heads(attn.to_k(hidden), heads))
        total = hidden.shape[1]
        query, key = _rotate(query, rotary, 0, total), _rotate(key, rotary, 0, total)
        q_img, k_img, k_txt = query[:, text_len:], key[:, text_len:], key[:, :text_len]
    else:
        if context is None:
            raise ValueError(f"a {kind!r} layer needs the text stream (encoder_hidden_states)")
        text_len = context.shape[1]
        q_img = _norm(attn.norm_q, _heads(attn.to_q(hidden), heads))
        k_img = _norm(attn.norm_k, _heads(attn.to_k(hidden), heads))
        k_txt = _norm(attn.norm_added_k, _heads(attn.add_k_proj(context), heads))
        if kind == "joint_text_first":
            n = hidden.shape[1]
            q_img = _rotate(q_img, rotary, text_len, text_len + n)
            k_img = _rotate(k_img, rotary, text_len, text_len + n)
            k_txt = _rotate(k_txt, rotary, 0, text_len)
    if n_query is not None:
        q_img = q_img[:, :n_query]
    return q_img.transpose(1, 2), k_img.transpose(1, 2), k_txt.transpose(1, 2)


def image_to_text_probs(q_img: torch.Tensor, k_img: torch.Tensor, k_txt: torch.Tensor, scale: float,
                        block: int | None = None, keep: slice = slice(None)) -> torch.Tensor:
    """The image-query -> text-key block of softmax(Q [K_img; K_txt]^T * scale), in float32.

    Args:
        q_img: (B, heads, N, d); k_img: (B, heads, N, d); k_txt: (B, heads, T, d).
        scale: the layer's softmax scale.
        block: query rows per step (default: as many as keep the logits, block x (N + T) per head
            and row, near ``BLOCK_FLOATS``).
        keep: the text positions to return (the normaliser still covers every key).

    Returns:
        (B, heads, N, T kept) probabilities; a row over all T sums to 1 minus its mass on image keys.
    """
    batch, heads, n, _ = q_img.shape
    if block is None:
        block = max(1, BLOCK_FLOATS // (batch * heads * (n + k_txt.shape[2])))
    kept = torch.arange(k_txt.shape[2])[keep].numel()
    out = torch.empty(batch, heads, n, kept, dtype=torch.float32, device=q_img.device)
    k_img, k_txt = k_img.float(), k_txt.float()
    for start in range(0, n, block):
        q = q_img[:, :, start:start + block].float()
        text_logits = q @ k_txt.transpose(-1, -2) * scale
        normaliser = torch.logaddexp(torch.logsumexp(q @ k_img.transpose(-1, -2) * scale, dim=-1, keepdim=True),
                                     torch.logsumexp(text_logits, dim=-1, keepdim=True))
        out[:, :, start:start + block] = (text_logits[..., keep] - normaliser).exp()
    return out
