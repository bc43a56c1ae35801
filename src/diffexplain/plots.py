"""Plots and notebook views of results, kept apart from the results themselves (as shap keeps
``shap.plots`` apart from ``shap.Explanation``).

Every function returns a matplotlib ``Figure`` built without pyplot, so the caller's backend and
figure list are left as they are, or draws into a given ``ax``. The ``*_html`` functions are what
``Explanation``, ``AttentionMaps`` and ``AuditSummary`` show in Jupyter (``_repr_html_``); every
text they hold is escaped. This module reads results by their attributes only (it imports none of
the result types, only the metrics), so the result types can call it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics.spatial import minmax_scale

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"


def png_data_uri(image: Any) -> str:
    """A PIL image, a uint8 (H, W, 3) array or a matplotlib figure as a ``data:`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    if hasattr(image, "savefig"):
        image.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # a pyplot-free Figure: nothing to close
    else:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _array(heatmap: Any) -> np.ndarray:
    """A heatmap (torch tensor or array) as a float64 numpy array."""
    return np.asarray(heatmap.detach().cpu() if hasattr(heatmap, "detach") else heatmap, dtype=np.float64)


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    return figure, figure.subplots()


def bar(explanation: Any, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Attribution of each word (red positive, blue negative) with standard-error bars.

    Args:
        explanation: an ``Explanation`` (anything with ``features``, ``values``, ``stderr``, ``method``).
        ax: draw into these axes instead of a new figure.
        title: default "<method> (error bars: standard error)".
    """
    d = len(explanation.features)
    figure, ax = _axes(ax, (max(4.0, 0.6 * d + 1.5), 2.8))
    err = None if explanation.stderr is None else np.nan_to_num(explanation.stderr)
    ax.bar(range(d), explanation.values, yerr=err, capsize=3,
           color=[POSITIVE if v >= 0 else NEGATIVE for v in explanation.values])
    ax.set_xticks(range(d), explanation.features, rotation=45, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    similarity = (getattr(explanation, "settings", None) or {}).get("similarity")
    ax.set_ylabel(f"attribution (change of {similarity} similarity)" if similarity else "attribution")
    ax.set_title(title or f"{explanation.method} (error bars: standard error)")
    return figure


def heatmap_overlay(heatmap: Any, image: np.ndarray | None = None, *, ax: Axes | None = None,
                    title: str | None = None, alpha: float = 0.5) -> Figure:
    """A word's heatmap (H, W) over the image (uint8 (H, W, 3)), as DAAM's ``plot_overlay``."""
    figure, ax = _axes(ax, (3.0, 3.0))
    heat = _array(heatmap)
    if image is not None:
        ax.imshow(image)
    ax.imshow(heat, cmap="jet", alpha=alpha if image is not None else 1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return figure


def word_overlays(maps: Any, image: np.ndarray | None = None, *, prompt_index: int = 0,
                  words: Sequence[int | str] | None = None, **heatmap_options: Any) -> Figure:
    """One overlay per word of a recorded prompt (``AttentionMaps``), in a row."""
    from matplotlib.figure import Figure

    chosen = list(range(len(maps.words[prompt_index]))) if words is None else list(words)
    figure = Figure(figsize=(1.8 * len(chosen), 2.1))
    axes = figure.subplots(1, len(chosen), squeeze=False)[0]
    for ax, word in zip(axes, chosen):
        index = maps.word_index(prompt_index, word)
        heatmap_overlay(maps.word_heatmap(index, prompt_index=prompt_index, **heatmap_options), image, ax=ax,
                        title=maps.words[prompt_index][index])
    return figure


def audit_bar(summary: Any, *, min_count: int = 2, k: int = 30, ax: Axes | None = None) -> Figure:
    """Mean share (± std) of the ``k`` words with the largest |mean| over at least ``min_count``
    prompts of an ``AuditSummary``."""
    words = sorted([w for w in summary.words if w.count >= min_count] or list(summary.words),
                   key=lambda w: -abs(w.mean))[:k]
    words = sorted(words, key=lambda w: -w.mean)
    figure, ax = _axes(ax, (max(5.0, 0.35 * len(words) + 1.5), 3.2))
    ax.bar(range(len(words)), [w.mean for w in words], yerr=[w.std for w in words], capsize=2,
           color=[POSITIVE if w.mean >= 0 else NEGATIVE for w in words])
    ax.set_xticks(range(len(words)), [f"{w.word} ({w.count})" for w in words], rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("mean share of |attribution|")
    ax.set_title(f"{summary.method} over {summary.n_prompts} prompts (word (prompts); bars: ± std)")
    return figure


def _bar_cell(value: float, scale: float) -> str:
    width = 0 if scale == 0 else int(round(48 * abs(value) / scale))
    colour = POSITIVE if value >= 0 else NEGATIVE
    return f'<span style="display:inline-block;width:{width}px;height:10px;background:{colour}"></span>'


def explanation_html(explanation: Any) -> str:
    """A compact table of the words' values, standard errors and p-values, with bars."""
    values = np.asarray(explanation.values, dtype=float)
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    rows = []
    for i, word in enumerate(explanation.features):
        stderr = "" if explanation.stderr is None or np.isnan(explanation.stderr[i]) else f"{explanation.stderr[i]:.4f}"
        pvalue = "" if explanation.pvalues is None else f"{explanation.pvalues[i]:.3f}"
        rows.append(f"<tr><td>{html.escape(str(word))}</td><td>{values[i]:+.4f}</td><td>{stderr}</td>"
                    f"<td>{pvalue}</td><td>{_bar_cell(values[i], scale)}</td></tr>")
    prompt = html.escape(str(explanation.metadata.get("prompt", ""))) if explanation.metadata else ""
    return (f"<div><b>{html.escape(explanation.method)}</b> on <i>{prompt}</i>: {explanation.n_generations} images "
            f"({explanation.n_cached} from the cache)<table><tr><th>word</th><th>value</th><th>std. error</th>"
            f"<th>p</th><th></th></tr>{''.join(rows)}</table></div>")


def maps_html(maps: Any, image: np.ndarray | None = None, prompt_index: int = 0) -> str:
    """Each word's heatmap of one recorded prompt, as small images."""
    tiles = []
    for index, word in enumerate(maps.words[prompt_index]):
        heat = _array(maps.word_heatmap(index, prompt_index=prompt_index))
        grey = (minmax_scale(heat) * 255).astype(np.uint8)
        tiles.append(f'<figure style="display:inline-block;margin:2px"><img src="{png_data_uri(grey)}" width="96" '
                     f'alt="{html.escape(word)}"><figcaption>{html.escape(word)}</figcaption></figure>')
    prompt = html.escape(maps.prompts[prompt_index])
    return f"<div><i>{prompt}</i> ({len(maps.layers)} layers)<br>{''.join(tiles)}</div>"


def summary_html(summary: Any, k: int = 10) -> str:
    """The most and least influential words of an audit."""
    def rows(words: Sequence[Any]) -> str:
        return "".join(f"<tr><td>{html.escape(w.word)}</td><td>{w.mean:+.3f}</td><td>{w.std:.3f}</td>"
                       f"<td>{w.count}</td></tr>" for w in words)

    head = "<tr><th>word</th><th>mean share</th><th>std</th><th>prompts</th></tr>"
    return (f"<div><b>{html.escape(summary.method)}</b> over {summary.n_prompts} prompts<table>{head}"
            f"{rows(summary.most(k))}</table><table>{head}{rows(summary.least(k))}</table></div>")
