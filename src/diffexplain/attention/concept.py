"""Output-space word maps on MMDiT joint attention, after ConceptAttention (Helbling et al., 2025,
"ConceptAttention: Diffusion Transformers Learn Highly Interpretable Features").

ConceptAttention's finding is that projecting in the *output* space of a DiT attention layer
gives sharper saliency than the attention probabilities: a concept's map over the image is the
dot product of each image token's attention output with the concept's attention output,
softmax-normalised over the concepts. The paper runs extra concept tokens through the blocks as
a separate stream; here the concepts are the prompt's own word tokens, whose attention outputs
the blocks already compute, so recording adds no model call and leaves the image bit-identical.
Double-stream (joint) blocks only, as the paper's Flux and SD3 code.
"""

from __future__ import annotations

from typing import Any

import torch

from .recorder import AttentionRecorder


class ConceptAttentionRecorder(AttentionRecorder):
    """Like ``AttentionRecorder`` on an SD3 / Flux pipeline, recording output-space maps instead of
    probabilities: per joint block, softmax over the kept text tokens of
    (image attention outputs) · (text attention outputs)^T, one "head".

    Args:
        pipe_or_unet: an SD3 or Flux pipeline, or its transformer.
        tokens: the text positions that are the concepts (``record_prompt`` passes the prompt's
            word tokens); default every text position.
        **kwargs: as ``AttentionRecorder`` (time groups, batch layout, keep_steps).
    """

    def __init__(self, pipe_or_unet: Any, **kwargs):
        super().__init__(pipe_or_unet, **kwargs)
        # a block with ``context_pre_only`` (SD3's last) returns its text stream before any output
        # projection: another space than its image outputs, so its dot product means nothing
        joint = {name: module for name, module in self.layers.items() if self.kinds[name] in
                 ("joint", "joint_text_first") and not getattr(module, "context_pre_only", False)}
        if not joint:
            raise ValueError(f"{type(self.unet).__name__} has no joint-attention blocks: output-space maps are "
                             "defined on MMDiT models (SD3, Flux)")
        self.layers = joint

    def _register_layer_hooks(self) -> None:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(
                lambda m, a, k, out, _name=name: self._output_hook(_name, k, out), with_kwargs=True))

    @torch.no_grad()
    def _output_hook(self, name: str, kwargs, output) -> None:
        if self._skip_call:  # Flux true CFG's negative-prompt call
            return
        if not isinstance(output, tuple) or len(output) < 2 or output[1] is None:
            return
        image_out, text_out = output[0], output[1]  # (B, N, C), (B, T, C) after the output projections
        rows = self._conditional_rows(image_out.shape[0])
        image_out, text_out = image_out[rows].float(), text_out[rows].float()
        if self._image_tokens is not None:
            image_out = image_out[:, :self._image_tokens]  # Flux Kontext: not the reference image's tokens
        self.context_len = int(text_out.shape[1])
        keep = slice(*self.tokens) if self.tokens is not None else slice(None)
        maps = (image_out @ text_out[:, keep].transpose(1, 2)).softmax(dim=-1)  # (B, N, K)
        self._accumulate(name, maps.unsqueeze(1).cpu())
