"""Self-contained HTML reports (images inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..types import Explanation


def png_data_uri(image) -> str:
    """A PIL image, a uint8 (H, W, 3) array or a matplotlib figure as a data: URI."""
    buffer = io.BytesIO()
    if hasattr(image, "savefig"):
        image.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(image)
    else:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _colour(value: float, scale: float) -> str:
    """Red for positive, blue for negative attributions, white for zero."""
    t = 0.0 if scale == 0 else max(-1.0, min(1.0, value / scale))
    if t >= 0:
        return f"rgb(255,{int(255 * (1 - t))},{int(255 * (1 - t))})"
    return f"rgb({int(255 * (1 + t))},{int(255 * (1 + t))},255)"


def attribution_figure(explanation: Explanation):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = len(explanation.features)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * d + 1.5), 2.8))
    err = None if explanation.stderr is None else np.nan_to_num(explanation.stderr)
    colours = ["#d62728" if v >= 0 else "#1f77b4" for v in explanation.values]
    ax.bar(range(d), explanation.values, yerr=err, color=colours, capsize=3)
    ax.set_xticks(range(d), explanation.features, rotation=45, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("attribution")
    ax.set_title(f"{explanation.method} (error bars: standard error)")
    return fig


def surrogate_figure(explanation: Explanation):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = np.asarray(explanation.info["masks"], dtype=float)
    y = np.asarray(explanation.info["responses"])
    w = np.asarray(explanation.info["weights"])
    fitted = z @ explanation.values + explanation.base_value
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.scatter(fitted, y, s=10 + 60 * w / max(w.max(), 1e-12), alpha=0.7)
    low, high = min(fitted.min(), y.min()), max(fitted.max(), y.max())
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
    ax.set_xlabel("surrogate prediction")
    ax.set_ylabel("value")
    ax.set_title(f"weighted R² = {explanation.info['fidelity_r2']:.3f}")
    return fig


def embedding_figure(embeddings: np.ndarray, masks: np.ndarray, words: Sequence[str]):
    """2-D PCA of coalition embeddings (n, E), one panel per word: coalitions with / without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred @ vt[:1].T, np.zeros(len(centred))]
    cols = min(4, len(words))
    rows = (len(words) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
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
    fig.suptitle("PCA of perturbed images' embeddings, by word presence", fontsize=10)
    return fig


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
.word{display:inline-block;padding:4px 7px;margin:2px;border-radius:4px;border:1px solid #ccc;font-size:18px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:right}
th{background:#f4f4f4}.tiles img{image-rendering:pixelated;width:96px;height:96px;margin:2px}
.tile{display:inline-block;text-align:center;font-size:11px;width:100px;vertical-align:top}
code{background:#f4f4f4;padding:1px 4px}"""


def explanation_report(explanation: Explanation, path: str | Path, *, coalition_images: Optional[list] = None,
                       embeddings: Optional[np.ndarray] = None, masks: Optional[np.ndarray] = None,
                       extra_sections: Sequence[str] = ()) -> Path:
    """Write a self-contained HTML report of a word explanation.

    Args:
        coalition_images: list of (caption, uint8 image) pairs to show.
        embeddings, masks: (n, E) embeddings of coalition images and their (n, d) masks, for the PCA.
        extra_sections: raw HTML blocks appended (e.g. attention views).
    """
    e = explanation
    scale = float(np.max(np.abs(e.values))) if len(e.values) else 0.0
    words_html = "".join(
        f'<span class="word" style="background:{_colour(v, scale)}" title="{v:+.4f}">{html.escape(w)}</span>'
        for w, v in zip(e.features, e.values))
    rows = []
    for i, word in enumerate(e.features):
        se = "" if e.stderr is None or np.isnan(e.stderr[i]) else f"{e.stderr[i]:.4f}"
        p = "" if e.pvalues is None else f"{e.pvalues[i]:.4f}"
        rows.append(f"<tr><td style='text-align:left'>{html.escape(word)}</td><td>{e.values[i]:+.4f}</td>"
                    f"<td>{e.normalised()[i]:+.3f}</td><td>{se}</td><td>{p}</td></tr>")
    sections = [
        f"<h1>Which words drive the image?</h1><p>Prompt: <code>{html.escape(str(e.metadata.get('prompt', '')))}</code>"
        f" &middot; method <b>{e.method}</b> &middot; {e.n_generations} images ({e.n_cached} from the cache)"
        f" &middot; seeds {e.settings.get('seeds')} &middot; embedder {e.settings.get('embedder')}, similarity "
        f"{e.settings.get('similarity')}</p><div>{words_html}</div>",
        f"<h2>Attributions</h2><img src='{png_data_uri(attribution_figure(e))}'>"
        "<table><tr><th>word</th><th>value</th><th>normalised</th><th>std. error</th><th>p-value</th></tr>"
        + "".join(rows) + f"</table><p>v(full) = {e.full_value:.4f}, base value = {e.base_value:.4f}</p>",
    ]
    if "fidelity_r2" in e.info:
        sections.append(f"<h2>Surrogate fit</h2><img src='{png_data_uri(surrogate_figure(e))}'>")
    if coalition_images:
        tiles = "".join(f"<div class='tile'><img src='{png_data_uri(img)}'><br>{html.escape(cap) or '(empty)'}</div>"
                        for cap, img in coalition_images)
        sections.append(f"<h2>Perturbed prompts and their images</h2><div class='tiles'>{tiles}</div>")
    if embeddings is not None and masks is not None and len(embeddings) > 2:
        figure = embedding_figure(embeddings, masks, e.features)
        sections.append(f"<h2>Embedding map</h2><img src='{png_data_uri(figure)}'>")
    sections.extend(extra_sections)
    sections.append(f"<h2>Settings</h2><pre>{html.escape(_pretty(e.settings))}</pre>"
                    f"<pre>{html.escape(_pretty(e.metadata))}</pre>")
    title = f"diffexplain: {html.escape(e.method)}"
    document = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>" \
               f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document)
    return path


def _pretty(mapping) -> str:
    import json

    return json.dumps(mapping, indent=2, default=str)
