"""Figures and an HTML section for attention maps."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .maps import AttentionMaps, normalise, overlay


def view_grid(maps: AttentionMaps, view: str, words: Sequence[int], image: np.ndarray, prompt_index: int = 0):
    """A matplotlib figure: one row per word, one column per time group / head / layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for word in words:
        if view == "time":
            stack = maps.time_view(word, prompt_index=prompt_index)
            titles = [f"t-group {g}" for g in range(len(stack))]
        elif view == "layer":
            stack, titles = maps.layer_view(word, prompt_index=prompt_index), [_short(n) for n in maps.layers]
        elif view == "head":
            layer = max(maps.layers, key=lambda n: maps.grids[n][0] * maps.grids[n][1])
            stack = maps.head_view(word, layer, prompt_index=prompt_index)
            titles = [f"head {h}" for h in range(len(stack))]
        else:
            raise ValueError(f"view must be 'time', 'head' or 'layer', got {view!r}")
        rows.append(stack)
    cols = rows[0].shape[0]
    fig, axes = plt.subplots(len(words), cols, figsize=(1.6 * cols, 1.7 * len(words)), squeeze=False)
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
    fig.suptitle(f"{view} view", fontsize=10)
    return fig


def _short(name: str) -> str:
    parts = name.split(".")
    return ".".join(p for p in parts if p not in ("attentions", "transformer_blocks", "attn2"))[:18]


def attention_section(maps: AttentionMaps, image: np.ndarray, *, views: Sequence[str] = ("time", "head", "layer"),
                      regions=None, prompt_index: int = 0, out_dir: Optional[Path] = None,
                      layers: Optional[Sequence[str]] = None) -> str:
    """HTML for the word heatmaps (averaged over ``layers``, default every recorded layer), the
    requested views and the region labels; PNGs also go to ``out_dir`` when given."""
    from PIL import Image

    from ..report.html import png_data_uri

    words = list(range(len(maps.words[prompt_index])))
    tiles = []
    for index in words:
        heatmap = maps.word_heatmap(index, prompt_index=prompt_index, layers=layers)
        blended = overlay(image, heatmap)
        if out_dir is not None:
            name = f"{index:02d}_{maps.words[prompt_index][index]}"
            grey = (normalise(heatmap).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(grey).save(out_dir / f"heatmap_{name}.png")
            Image.fromarray(blended).save(out_dir / f"overlay_{name}.png")
        big = Image.fromarray(blended).resize((128, 128 * image.shape[0] // image.shape[1]), Image.NEAREST)
        tiles.append(f"<div class='tile'><img src='{png_data_uri(big)}' style='width:128px;height:auto'>"
                     f"<br>{html.escape(maps.words[prompt_index][index])}</div>")
    parts = [f"<h2>Where each word lands (cross-attention)</h2><div class='tiles'>{''.join(tiles)}</div>"]
    for view in views:
        figure = view_grid(maps, view, words, image, prompt_index)
        if out_dir is not None:
            figure.savefig(out_dir / f"view_{view}.png", dpi=110, bbox_inches="tight")
        parts.append(f"<h3>{view} view</h3><img src='{png_data_uri(figure)}'>")
    if regions is not None:
        import matplotlib

        colours = (matplotlib.colormaps["tab20"](regions.labels % 20)[..., :3] * 255).astype(np.uint8)
        labelled = Image.fromarray(colours).resize((128, 128 * image.shape[0] // image.shape[1]), Image.NEAREST)
        if out_dir is not None:
            Image.fromarray(colours).save(out_dir / "regions.png")
        rows = "".join(f"<tr><td>{r}</td><td style='text-align:left'>{html.escape(regions.words[w])}</td>"
                       f"<td>{regions.attention_scores[r, w]:.2f}</td></tr>" for r, w in enumerate(regions.best_word))
        parts.append("<h3>Regions and their best word</h3>"
                     f"<img src='{png_data_uri(labelled)}' style='width:128px'>"
                     "<table><tr><th>region</th><th>best word</th><th>attention score (1 = chance)</th></tr>"
                     f"{rows}</table>")
    return "".join(parts)
