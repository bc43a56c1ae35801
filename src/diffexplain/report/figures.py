"""Figures for reports: image grids, attribution bars, surrogate fits, embedding maps, attention views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..attention.maps import AttentionMaps, overlay
from ..plots import audit_bar, bar
from ..types import Explanation

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def image_grid(images: Sequence[Image.Image], columns: int, scale: int = 1, pad: int = 2,
               labels: Sequence[str] | None = None) -> Image.Image:
    """Tile equally sized images into a grid, each upscaled by ``scale`` (nearest neighbour), with
    ``labels`` (one per image, wrapped to the tile's width) written under the tiles when given."""
    from PIL import ImageDraw, ImageFont

    if not images:
        raise ValueError("images must not be empty")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
    width, height = images[0].width * scale, images[0].height * scale
    font = ImageFont.load_default()
    lines: list[list[str]] = []
    for label in labels or ():
        rows_of_text, current = [], ""
        for word in str(label).split():
            trial = f"{current} {word}".strip()
            if current and font.getlength(trial) > width:
                rows_of_text.append(current)
                current = word
            else:
                current = trial
        lines.append(rows_of_text + ([current] if current else []))
    line_height = 12
    text_height = max((len(x) for x in lines), default=0) * line_height + (4 if lines else 0)
    rows = (len(images) + columns - 1) // columns
    cell = height + text_height
    grid = Image.new("RGB", (columns * (width + pad) + pad, rows * (cell + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        x, y = pad + c * (width + pad), pad + r * (cell + pad)
        grid.paste(image.convert("RGB").resize((width, height), Image.Resampling.NEAREST), (x, y))
        for k, text in enumerate(lines[index] if lines else ()):
            draw.text((x, y + height + 2 + k * line_height), text, fill=(30, 30, 30), font=font)
    return grid


def attribution_figure(explanation: Explanation) -> Figure:
    """The words' values with standard-error bars (``plots.bar``)."""
    return bar(explanation)


def audit_figure(summary: Any, *, min_count: int = 2, k: int = 30) -> Figure:
    """The audit's words by mean share (``plots.audit_bar``)."""
    return audit_bar(summary, min_count=min_count, k=k)


def surrogate_figure(explanation: Explanation) -> Figure:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list stay untouched

    if explanation.coalitions is None:
        raise ValueError("a surrogate figure needs the explanation's coalitions")
    z = explanation.coalitions.astype(float)
    y = np.asarray(explanation.info["responses"])
    w = np.asarray(explanation.info["weights"])
    fitted = z @ explanation.values + explanation.base_value
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.subplots()
    ax.scatter(fitted, y, s=10 + 60 * w / max(w.max(), 1e-12), alpha=0.7)
    low, high = min(fitted.min(), y.min()), max(fitted.max(), y.max())
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
    ax.set_xlabel("surrogate prediction")
    ax.set_ylabel("value")
    ax.set_title(f"weighted R² = {explanation.info['fidelity_r2']:.3f}")
    return fig


def embedding_figure(embeddings: np.ndarray, masks: np.ndarray, words: Sequence[str]) -> Figure:
    """2-D PCA of coalition embeddings (n, E), one panel per word: coalitions with / without it."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list stay untouched

    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred @ vt[:1].T, np.zeros(len(centred))]
    cols = min(4, len(words))
    rows = (len(words) + cols - 1) // cols
    fig = Figure(figsize=(2.6 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for index, word in enumerate(words):
        ax = axes[index // cols][index % cols]
        has = masks[:, index].astype(bool)
        ax.scatter(points[~has, 0], points[~has, 1], s=9, c="#bbbbbb", label="without")
        ax.scatter(points[has, 0], points[has, 1], s=9, c="#d62728", label="with")
        ax.set_title(word, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for index in range(len(words), rows * cols):
        axes[index // cols][index % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, ["coalitions without the word", "coalitions with the word"], loc="lower center", ncol=2,
               fontsize=8, frameon=False)
    fig.suptitle("PCA of perturbed images' embeddings, by word presence", fontsize=10)
    fig.subplots_adjust(bottom=0.1 if rows > 1 else 0.16)
    return fig


def view_grid(maps: AttentionMaps, view: str, words: Sequence[int], image: np.ndarray, prompt_index: int = 0) -> Figure:
    """A matplotlib figure: one row per word, one column per time group / head / layer."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list stay untouched

    rows = []
    for word in words:
        if view == "time":
            stack = maps.time_view(word, prompt_index=prompt_index)
            titles = [f"t-group {g}" for g in range(len(stack))]
        elif view == "layer":
            stack, titles = maps.layer_view(word, prompt_index=prompt_index), [layer_label(n)[:18] for n in maps.layers]
        elif view == "head":
            layer = max(maps.layers, key=lambda n: maps.grids[n][0] * maps.grids[n][1])
            stack = maps.head_view(word, layer, prompt_index=prompt_index)
            titles = [f"head {h}" for h in range(len(stack))]
        else:
            raise ValueError(f"view must be 'time', 'head' or 'layer', got {view!r}")
        rows.append(stack)
    cols = rows[0].shape[0]
    fig = Figure(figsize=(1.6 * cols, 1.7 * len(words)))
    axes = fig.subplots(len(words), cols, squeeze=False)
    for r, (word, stack) in enumerate(zip(words, rows)):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(overlay(image, stack[c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(maps.words[prompt_index][word], fontsize=9)
    return fig


def layer_label(name: str) -> str:
    """A layer's name without the parts every layer shares ("attentions", "transformer_blocks", "attn2")."""
    parts = name.split(".")
    return ".".join(p for p in parts if p not in ("attentions", "transformer_blocks", "attn2"))
