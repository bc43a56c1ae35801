"""Per-word cross-attention heatmaps and their time / head / layer views."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._files import read_pair, write_pair
from ..metrics.spatial import minmax_scale
from ..tokens import special_tokens_after, special_tokens_before, word_token_spans

WordRef = str | int


def threshold(heatmap: torch.Tensor, tau: float = 0.4) -> torch.Tensor:
    """Binary mask of a min-max-normalised map at ``tau`` (DAAM uses 0.4)."""
    if not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    return minmax_scale(heatmap) >= tau


@dataclasses.dataclass(frozen=True)
class AttentionMaps:
    """Cross-attention recorded during one generation call.

    Attributes:
        prompts: one prompt per batch row.
        words: each prompt's whitespace words.
        spans: each prompt's word -> [start, end) token positions.
        layers: recorded layer names, in UNet order.
        grids: layer name -> (h, w) of its query grid.
        means: layer name -> float32 (B, G, heads, h*w, tokens): mean attention per time group.
        counts: layer name -> (G,) number of steps in each time group.
        image_size: (height, width) of the generated images.
        timesteps: the timestep of every UNet call.
    """

    prompts: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]
    spans: tuple[tuple[tuple[int, int], ...], ...]
    layers: tuple[str, ...]
    grids: dict
    means: dict
    counts: dict
    image_size: tuple[int, int]
    timesteps: tuple[int, ...] = ()

    @classmethod
    def from_recorder(cls, recorder: Any, tokenizer: Any, prompts: list[str], image_size: tuple[int, int], *,
                      words: Sequence[Sequence[str]] | None = None,
                      spans: Sequence[Sequence[tuple[int, int]]] | None = None, offset: int = 0) -> AttentionMaps:
        """Package a recording. ``words`` / ``spans`` override the tokenizer's word split, for
        contexts that are not text (e.g. one "reference" word spanning every image token);
        ``offset``: where the tokenizer's tokens start in the context (SD3's T5 segment: 77)."""
        layers = tuple(name for name in recorder.layers if name in recorder.accumulators)
        batch = recorder.accumulators[layers[0]].sums.shape[0]
        if len(prompts) != batch:
            raise ValueError(f"prompts must have one entry per recorded batch row ({batch}), got {len(prompts)}")
        means, counts = {}, {}
        for name in layers:
            acc = recorder.accumulators[name]
            means[name] = acc.sums / acc.counts.clamp(min=1).view(1, -1, 1, 1, 1)
            counts[name] = acc.counts.clone()
        if words is None:
            words = [p.split() for p in prompts]
            start, trailing = special_tokens_before(tokenizer), special_tokens_after(tokenizer)
            spans = [[(a + offset, b + offset) for a, b in word_token_spans(tokenizer, p, start=start)]
                     for p in prompts]
            # context positions the layers saw (the recorder may keep only some: ``tokens``)
            context = getattr(recorder, "context_len", 0) or means[layers[0]].shape[-1]
            for prompt, row, span in zip(prompts, words, spans):
                cut = [w for w, (_, end) in zip(row, span) if end > context - trailing]
                if cut:  # their maps would be empty: the encoder never saw these words
                    taken = context - trailing - offset - start
                    raise ValueError(
                        f"prompt {prompt!r} is {span[-1][1] - offset - start} tokens, above the {taken} the text "
                        f"encoder takes: the pipeline cut off {', '.join(repr(w) for w in cut)}, which have no "
                        "attention; shorten the prompt")
        if spans is None:
            raise ValueError("words need their spans (one [start, end) context range per word)")
        kept = getattr(recorder, "tokens", None)
        if kept is not None:  # spans are context positions; the recorder's columns start at kept[0]
            outside = [w for row, span in zip(words, spans) for w, (a, b) in zip(row, span)
                       if a < kept[0] or b > kept[1]]
            if outside:
                raise ValueError(f"the recorder kept context positions {kept} only; words "
                                 f"{', '.join(repr(w) for w in outside)} lie outside them")
            spans = [[(a - kept[0], b - kept[0]) for a, b in span] for span in spans]
        return cls(
            prompts=tuple(prompts), words=tuple(tuple(w) for w in words),
            spans=tuple(tuple((int(a), int(b)) for a, b in row) for row in spans), layers=layers,
            grids={n: (int(recorder.accumulators[n].grid[0]), int(recorder.accumulators[n].grid[1])) for n in layers},
            means=means, counts=counts,
            image_size=(int(image_size[0]), int(image_size[1])), timesteps=tuple(recorder.timesteps),
        )

    # -- selection ------------------------------------------------------------------------------
    @property
    def n_time_groups(self) -> int:
        """Time groups of the recording (every layer has the same)."""
        return len(next(iter(self.counts.values())))

    def n_heads(self, layer: str | int) -> int:
        """Attention heads of one recorded layer (by name or index)."""
        return int(self.means[self._layer_names([layer])[0]].shape[2])

    def word_index(self, prompt_index: int, word: WordRef) -> int:
        words = self.words[prompt_index]
        if isinstance(word, int):
            if not 0 <= word < len(words):
                raise ValueError(f"word index must be in [0, {len(words)}), got {word}")
            return word
        hits = [i for i, w in enumerate(words) if w == word]
        if not hits:
            raise ValueError(f"word {word!r} is not in the prompt {self.prompts[prompt_index]!r}; words: {list(words)}")
        if len(hits) > 1:
            raise ValueError(f"word {word!r} occurs {len(hits)} times in the prompt; pass its index (one of {hits})")
        return hits[0]

    def layers_at_least(self, min_side: int) -> list[str]:
        """Recorded layers whose query grid is at least ``min_side`` on its shorter side.

        Coarse layers (the shapes model's 4x4 and middle blocks, SD's 8x8) attend almost uniformly
        and blur a word's map when averaged in; pass the result as ``layers=``.
        """
        if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1:
            raise ValueError(f"min_side must be a positive int, got {min_side!r}")
        names = [n for n in self.layers if min(self.grids[n]) >= min_side]
        if not names:
            raise ValueError(f"min_side={min_side} leaves no layer; grids: "
                             f"{sorted({tuple(g) for g in self.grids.values()})}")
        return names

    def _layer_names(self, layers) -> list[str]:
        if layers is None:
            return list(self.layers)
        names = []
        for layer in layers:
            name = self.layers[layer] if isinstance(layer, int) else layer
            if name not in self.means:
                raise ValueError(f"layer {layer!r} was not recorded; layers: {list(self.layers)}")
            names.append(name)
        return names

    def _layer_map(self, name: str, prompt_index: int, token_slice: slice, groups, heads, size) -> torch.Tensor:
        means, counts = self.means[name][prompt_index], self.counts[name]  # (G, heads, hw, T), (G,)
        group_ids = list(range(len(counts))) if groups is None else list(groups)
        weights = counts[group_ids]
        if weights.sum() == 0:
            return torch.zeros(size)
        per_group = means[group_ids]  # (g, heads, hw, T)
        mean = (per_group * weights.view(-1, 1, 1, 1)).sum(0) / weights.sum()  # (heads, hw, T)
        if heads is not None:
            mean = mean[list(heads)]
        column = mean[..., token_slice].sum(-1).mean(0)  # sub-tokens summed, heads averaged: (hw,)
        h, w = self.grids[name]
        grid = column.reshape(1, 1, h, w)
        return F.interpolate(grid, size=size, mode="bicubic", align_corners=False)[0, 0].clamp(min=0)

    # -- maps -----------------------------------------------------------------------------------
    def word_heatmap(self, word: WordRef, *, prompt_index: int = 0, layers: Sequence | None = None,
                     time_groups: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                     reduce: str = "mean", size: tuple[int, int] | None = None) -> torch.Tensor:
        """A word's heatmap: its sub-tokens' attention columns on each layer's grid, upsampled
        (bicubic) to ``size`` (default: the image size), clamped at 0, averaged over the selected
        heads and time groups (weighted by steps) and reduced over layers.

        Returns:
            float32 (H, W).
        """
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        if not 0 <= prompt_index < len(self.prompts):
            raise ValueError(f"prompt_index must be in [0, {len(self.prompts)}), got {prompt_index}")
        index = self.word_index(prompt_index, word)
        start, end = self.spans[prompt_index][index]
        size = (int((size or self.image_size)[0]), int((size or self.image_size)[1]))
        stack = torch.stack([self._layer_map(n, prompt_index, slice(start, end), time_groups, heads, size)
                             for n in self._layer_names(layers)])
        return stack.mean(0) if reduce == "mean" else stack.sum(0)

    def time_view(self, word: WordRef, **kwargs) -> torch.Tensor:
        """(G, H, W): one heatmap per time group (group 0 = noisiest)."""
        return torch.stack([self.word_heatmap(word, time_groups=[g], **kwargs) for g in range(self.n_time_groups)])

    def head_view(self, word: WordRef, layer: str | int, **kwargs) -> torch.Tensor:
        """(heads, H, W): one heatmap per head of one layer."""
        name = self._layer_names([layer])[0]
        return torch.stack([self.word_heatmap(word, layers=[name], heads=[h], **kwargs)
                            for h in range(self.n_heads(name))])

    def layer_view(self, word: WordRef, **kwargs) -> torch.Tensor:
        """(L, H, W): one heatmap per layer."""
        return torch.stack([self.word_heatmap(word, layers=[n], **kwargs) for n in self.layers])

    def all_word_heatmaps(self, prompt_index: int = 0, **kwargs) -> torch.Tensor:
        """(n_words, H, W) heatmaps of every word of a prompt."""
        return torch.stack([self.word_heatmap(i, prompt_index=prompt_index, **kwargs)
                            for i in range(len(self.words[prompt_index]))])

    # -- views (``diffexplain.plots``) ----------------------------------------------------------
    def plot(self, word: WordRef, image: np.ndarray | None = None, *, prompt_index: int = 0, ax: Any = None,
             **options: Any) -> Any:
        """A word's heatmap over the image (DAAM's ``plot_overlay``): a matplotlib ``Figure`` (no
        pyplot); ``options`` as ``word_heatmap`` (layers, time_groups, heads)."""
        from ..plots import heatmap_overlay

        index = self.word_index(prompt_index, word)
        return heatmap_overlay(self.word_heatmap(index, prompt_index=prompt_index, **options), image, ax=ax,
                               title=self.words[prompt_index][index])

    def _repr_html_(self) -> str:
        from ..plots import maps_html

        return maps_html(self)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``attention.json`` (structure) and ``attention.safetensors`` (per-layer means)."""
        from safetensors.torch import save_file

        meta = dict(prompts=list(self.prompts), words=[list(w) for w in self.words],
                    spans=[[list(s) for s in spans] for spans in self.spans], layers=list(self.layers),
                    grids={k: list(v) for k, v in self.grids.items()}, image_size=list(self.image_size),
                    timesteps=list(self.timesteps))
        tensors = {f"means/{n}": self.means[n].contiguous() for n in self.layers}
        tensors.update({f"counts/{n}": self.counts[n].contiguous() for n in self.layers})
        return write_pair(directory, "attention", meta, tensors, save_file)

    @classmethod
    def load(cls, directory: str | Path) -> AttentionMaps:
        from safetensors.torch import load_file

        meta, tensors = read_pair(directory, "attention", load_file)
        layers = tuple(meta["layers"])
        return cls(
            prompts=tuple(meta["prompts"]), words=tuple(tuple(w) for w in meta["words"]),
            spans=tuple(tuple(tuple(s) for s in spans) for spans in meta["spans"]), layers=layers,
            grids={k: tuple(v) for k, v in meta["grids"].items()},
            means={n: tensors[f"means/{n}"] for n in layers}, counts={n: tensors[f"counts/{n}"] for n in layers},
            image_size=tuple(meta["image_size"]), timesteps=tuple(meta["timesteps"]),
        )


def overlay(image: np.ndarray, heatmap: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """Blend a normalised heatmap (jet colours) over a uint8 (H, W, 3) image of the same size."""
    import matplotlib

    colours = matplotlib.colormaps["jet"](minmax_scale(heatmap).numpy())[..., :3]
    blended = (1 - alpha) * image.astype(np.float64) / 255.0 + alpha * colours
    return (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)
