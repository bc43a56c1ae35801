"""Self-contained HTML pages (images inlined as base64 PNG), built from the templates in
``report/templates`` with autoescaping: every text that reaches a page is escaped, and only
blocks rendered by these functions (``markupsafe.Markup``) are inserted as HTML."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup
from PIL import Image

from ..plots import png_data_uri
from ..types import Explanation
from .figures import attribution_figure, embedding_figure, layer_label, surrogate_figure, view_grid

if TYPE_CHECKING:
    from ..models.edit_adapter import PaintByExampleAdapter


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("diffexplain.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> Markup:
    """Render one template of ``report/templates`` (autoescaped) into a safe HTML block."""
    return Markup(_environment().get_template(template).render(**context))


# Every page is self-contained: nothing loads from anywhere (images are data: URIs) and inline style
# cannot run code. The only script a page may run is the attention explorer's, shipped in the package
# and allowed by its hash: a hostile prompt that slipped past escaping would still execute nothing.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src {scripts}; img-src data:; style-src 'unsafe-inline'; "
                           "base-uri 'none'; form-action 'none'")
EXPLORER_MARK = "data-dx-explorer"  # a section holding the explorer, which the page then equips with its script


@functools.lru_cache(maxsize=1)
def explorer_script() -> str:
    """The explorer's script (report/templates/explorer.js), inlined into pages that show it."""
    from importlib.resources import files

    return (files("diffexplain.report") / "templates" / "explorer.js").read_text(encoding="utf-8")


def content_security_policy(scripts: Sequence[str] = ()) -> str:
    """The page's policy: no script at all, or exactly the given inline scripts (by SHA-256)."""
    import base64
    import hashlib

    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode('utf-8')).digest()).decode()}'" for s in scripts]
    return CONTENT_SECURITY_POLICY.format(scripts=" ".join(hashes) or "'none'")


def write_page(path: str | Path, title: str, sections: Sequence[Markup], heading: str | None = None) -> Path:
    """Write a whole page: ``title`` and ``heading`` are escaped, ``sections`` must be rendered blocks."""
    for section in sections:
        if not isinstance(section, Markup):
            raise ValueError(f"sections must be blocks rendered by diffexplain.report (Markup), got "
                             f"{type(section).__name__}: build them with report.html.render or tiles_section")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripts = [explorer_script()] if any(EXPLORER_MARK in section for section in sections) else []
    path.write_text(render("page.html", title=title, heading=heading, sections=list(sections),
                           csp=content_security_policy(scripts), scripts=[Markup(s) for s in scripts]))
    return path


def _script_json(value: Any) -> Markup:
    """JSON safe inside a <script type="application/json"> element: no '<', '>' or '&' can close it."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def explorer_section(maps: Any, image: np.ndarray, *, prompt_index: int = 0, layers: Sequence[str] | None = None,
                     side: int = 32) -> Markup:
    """The interactive attention explorer: every word's heatmap per time group and per layer (and
    averaged over each), as small coloured overlays the page's script lays over the image.

    Args:
        maps: ``AttentionMaps`` of one generation; image: that generation, uint8 (H, W, 3).
        layers: the layers the slider steps through (default every recorded layer).
        side: the overlays' side in pixels (the browser scales them smoothly).
    """
    import matplotlib

    from ..metrics.spatial import minmax_scale

    names = list(maps.layers) if layers is None else [maps.layers[x] if isinstance(x, int) else x for x in layers]
    n_groups = maps.n_time_groups
    colour = matplotlib.colormaps["jet"]
    words = list(maps.words[prompt_index])

    def tile(heatmap) -> str:
        v = minmax_scale(heatmap).numpy()
        rgba = colour(v)
        rgba[..., 3] = 0.15 + 0.55 * v  # cold places let the image through
        return png_data_uri((rgba * 255).round().astype(np.uint8))

    grid = [[[tile(maps.word_heatmap(w, prompt_index=prompt_index, size=(side, side),
                                     layers=names if layer is None else [layer],
                                     time_groups=None if group is None else [group]))
              for layer in [None, *names]] for group in [None, *range(n_groups)]] for w in range(len(words))]
    data = dict(words=words, times=["all"] + [str(g) for g in range(n_groups)],
                layers=["all"] + [layer_label(n) for n in names], maps=grid)
    return render("explorer.html", image=png_data_uri(image), words=words, times=data["times"],
                  layers=data["layers"], data=_script_json(data))


def tiles_section(items: Sequence[tuple[str, object]], title: str = "", *, level: str = "h2", note: str = "",
                  wide: bool = False) -> Markup:
    """A row of captioned images: ``items`` are (caption, image) pairs (PIL, uint8 array or figure)."""
    if level not in ("h2", "h3"):
        raise ValueError(f"level must be 'h2' or 'h3', got {level!r}")
    tiles = [dict(src=png_data_uri(image), caption=caption) for caption, image in items]
    return render("tiles.html", items=tiles, title=title, level=level, note=note, wide=wide)


def _colour(value: float, scale: float) -> str:
    """Red for positive, blue for negative attributions, white for zero."""
    t = 0.0 if scale == 0 else max(-1.0, min(1.0, value / scale))
    if t >= 0:
        return f"rgb(255,{int(255 * (1 - t))},{int(255 * (1 - t))})"
    return f"rgb({int(255 * (1 + t))},{int(255 * (1 + t))},255)"


def explanation_report(explanation: Explanation, path: str | Path, *, cache: Any = None,
                       extra_sections: Sequence[Markup] = (), max_images: int = 24) -> Path:
    """Write a self-contained HTML report of a word explanation.

    With the generation cache the explanation was computed with, the report also shows up to
    ``max_images`` coalitions' images (first seed) and a PCA map of every coalition's embedding,
    read back by the explanation's keys: nothing is generated, and a loaded explanation gives the
    same report as a fresh one.

    Args:
        explanation: the result to show.
        path: the HTML file to write.
        cache: the ``GenerationCache`` holding the coalitions' images (None: bars only).
        extra_sections: blocks rendered by this module (``attention_section``, ``tiles_section``).
        max_images: how many coalitions' images to show (a fixed random subset when more).
    """
    e = explanation
    coalition_tiles, embedding_src, masks, keys = [], None, e.coalitions, e.coalition_keys
    if cache is not None and masks is not None and keys is not None:
        rows = np.arange(len(masks))
        if len(rows) > max_images:
            rows = np.random.default_rng(0).permutation(len(rows))[:max_images]
        texts = e.coalition_texts or ("",) * len(masks)
        found = cache.get_images([keys[r][0] for r in rows])  # none in an embeddings-only cache
        coalition_tiles = [dict(src=png_data_uri(found[keys[r][0]]), caption=texts[r] or "(empty)")
                           for r in rows if keys[r][0] in found]
        embedder = e.settings.get("embedder")
        vectors = cache.get_embeddings([row[0] for row in keys], embedder) if embedder else {}
        if len(masks) > 2 and len(vectors) == len({row[0] for row in keys}):
            embedding_src = png_data_uri(embedding_figure(np.stack([vectors[row[0]] for row in keys]), masks,
                                                          e.features))
    scale = float(np.max(np.abs(e.values))) if len(e.values) else 0.0
    normalised = e.normalised()
    words = [dict(text=w, value=float(v), colour=_colour(float(v), scale), normalised=float(normalised[i]),
                  stderr="" if e.stderr is None or np.isnan(e.stderr[i]) else f"{e.stderr[i]:.4f}",
                  pvalue="" if e.pvalues is None else f"{e.pvalues[i]:.4f}")
             for i, (w, v) in enumerate(zip(e.features, e.values))]
    for section in extra_sections:
        if not isinstance(section, Markup):
            raise ValueError("extra_sections must be blocks rendered by diffexplain.report, "
                             f"got {type(section).__name__}")
    body = render("explanation.html", e=e, prompt=str(e.metadata.get("prompt", "")), words=words,
                  attribution_figure=png_data_uri(attribution_figure(e)),
                  surrogate_figure=png_data_uri(surrogate_figure(e)) if "fidelity_r2" in e.info else None,
                  coalition_tiles=coalition_tiles, embedding_figure=embedding_src, extra_sections=list(extra_sections),
                  settings=_pretty(e.settings), metadata=_pretty(e.metadata))
    return write_page(path, f"diffexplain: {e.method}", [body])


def attention_section(maps: Any, image: np.ndarray, *, views: Sequence[str] = ("time", "head", "layer"),
                      regions: Any = None,
                      prompt_index: int = 0, out_dir: Path | None = None,
                      layers: Sequence[str] | None = None) -> Markup:
    """The word heatmaps (averaged over ``layers``, default every recorded layer), the requested
    views and the region labels as an HTML block; PNGs also go to ``out_dir`` when given.

    Args:
        maps: ``AttentionMaps`` of one generation.
        image: that generation, uint8 (H, W, 3).
        regions: ``attention.regions.RegionMatch`` or None.
    """
    from ..attention.maps import overlay
    from ..metrics.spatial import minmax_scale

    words = list(range(len(maps.words[prompt_index])))
    size = (128, 128 * image.shape[0] // image.shape[1])
    word_tiles = []
    for index in words:
        heatmap = maps.word_heatmap(index, prompt_index=prompt_index, layers=layers)
        blended = overlay(image, heatmap)
        if out_dir is not None:
            name = f"word{index:02d}"  # never the word's text: it may hold "/" or any character
            grey = (minmax_scale(heatmap).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(grey).save(out_dir / f"heatmap_{name}.png")
            Image.fromarray(blended).save(out_dir / f"overlay_{name}.png")
        big = Image.fromarray(blended).resize(size, Image.Resampling.NEAREST)
        word_tiles.append(dict(src=png_data_uri(big), caption=maps.words[prompt_index][index]))
    view_images = []
    for view in views:
        figure = view_grid(maps, view, words, image, prompt_index)
        if out_dir is not None:
            figure.savefig(out_dir / f"view_{view}.png", dpi=110, bbox_inches="tight")
        view_images.append(dict(name=view, src=png_data_uri(figure)))
    region_block = None
    if regions is not None:
        import matplotlib

        colours = (matplotlib.colormaps["tab20"](regions.labels % 20)[..., :3] * 255).astype(np.uint8)
        if out_dir is not None:
            Image.fromarray(colours).save(out_dir / "regions.png")
        region_block = dict(src=png_data_uri(Image.fromarray(colours).resize(size, Image.Resampling.NEAREST)),
                            rows=[dict(region=r, word=regions.words[w], score=float(regions.attention_scores[r, w]))
                                  for r, w in enumerate(regions.best_word)])
    return render("attention.html", word_tiles=word_tiles, views=view_images, regions=region_block,
                  explorer=explorer_section(maps, image, prompt_index=prompt_index, layers=layers))


def i2am_report(path: str | Path, result: Any, adapter: PaintByExampleAdapter) -> Path:
    """The I2AM page of a Paint-by-Example generation.

    Args:
        path: the HTML file to write.
        result: ``image2image.i2am.I2AMResult``.
        adapter: the ``PaintByExampleAdapter`` it came from (source, mask, reference).
    """
    import torch

    from ..attention.maps import overlay

    mask_image = (adapter.mask[..., None].repeat(3, axis=2) * 255).astype(np.uint8)
    inputs = [("source", adapter.source), ("mask", mask_image), ("reference", adapter.reference),
              ("generated", result.image),
              ("reference to generated", overlay(result.image, torch.from_numpy(result.r2g)))]
    if result.guidance is not None:
        inputs.append(("guidance difference", overlay(result.image, torch.from_numpy(result.guidance))))
    guidance_time = []
    if result.guidance_time is not None:  # one overlay per time group, noisiest first
        guidance_time = [dict(src=png_data_uri(overlay(result.image, torch.from_numpy(m))),
                              caption=f"group {g}: IMACS {score:.3f}")
                         for g, (m, score) in enumerate(zip(result.guidance_time, result.imacs_guidance_time))]
    views = [dict(name=v, src=png_data_uri(view_grid(result.maps, v, [0], result.image)))
             for v in ("time", "head", "layer")]
    body = render("i2am.html", inputs=[dict(src=png_data_uri(im), caption=name) for name, im in inputs],
                  imacs_r2g=result.imacs_r2g, imacs_guidance=result.imacs_guidance, imacs_g2r=result.imacs_g2r,
                  guidance_time=guidance_time, views=views,
                  g2r=png_data_uri(overlay(adapter.reference, torch.from_numpy(result.g2r))))
    return write_page(path, "diffexplain i2am", [body], heading="How the reference is used (I2AM)")


def audit_report(summary: Any, path: str | Path, *, min_count: int = 2, k: int = 15) -> Path:
    """The page of a dataset audit: a plot of per-word attributions, the most and least influential
    words (seen in at least ``min_count`` prompts), and the group differences."""
    from .figures import audit_figure

    body = render("audit.html", n_prompts=summary.n_prompts, method=summary.method, min_count=min_count,
                  figure=png_data_uri(audit_figure(summary, min_count=min_count)),
                  most=summary.most(k, min_count), least=summary.least(k, min_count), groups=list(summary.groups),
                  differences=list(summary.differences[:k]))
    return write_page(path, "diffexplain audit", [body], heading="Which words drive the model across the prompts")


def _pretty(mapping) -> str:
    return json.dumps(mapping, indent=2, default=str)
