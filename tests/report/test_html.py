import numpy as np
import pytest
from markupsafe import Markup

from diffexplain.report.html import explanation_report, render, tiles_section, write_page
from diffexplain.types import Explanation

HOSTILE = "<script>alert(1)</script>"


def _explanation(**overrides):
    fields = dict(method="lime", features=("a", "<b>red</b>", "circle"), values=np.array([0.1, -0.2, 0.3]),
                  base_value=0.0, full_value=0.2, stderr=np.array([0.01, np.nan, 0.02]),
                  info=dict(fidelity_r2=0.9, responses=[0.2, 0.1, 0.0], weights=[1.0, 0.5, 0.5]),
                  coalitions=np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], bool),
                  settings=dict(seeds=[0], note=HOSTILE), metadata=dict(prompt=HOSTILE))
    fields.update(overrides)
    return Explanation(**fields)


def test_every_text_that_reaches_a_page_is_escaped(tmp_path):
    page = explanation_report(_explanation(), tmp_path / "r.html",
                              extra_sections=[tiles_section([(HOSTILE, np.zeros((4, 4, 3), np.uint8))], HOSTILE)])
    text = page.read_text()
    assert "<script>" not in text and "<b>red</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;red&lt;/b&gt;" in text
    assert text.count("data:image/png;base64,") >= 3  # bars, surrogate fit, the tile: all inlined
    assert "Surrogate fit" in text and "Perturbed prompts" not in text  # no game, no coalition images


def test_pages_take_only_rendered_blocks(tmp_path):
    with pytest.raises(ValueError, match="sections must be blocks rendered by diffexplain.report"):
        write_page(tmp_path / "p.html", "t", ["<p>raw html</p>"])
    with pytest.raises(ValueError, match="extra_sections must be blocks rendered"):
        explanation_report(_explanation(), tmp_path / "r.html", extra_sections=["<p>raw</p>"])
    page = write_page(tmp_path / "p.html", HOSTILE, [Markup("<p>ok</p>")], heading=HOSTILE).read_text()
    assert "<p>ok</p>" in page and "<title>&lt;script&gt;" in page and "<h1>&lt;script&gt;" in page


def test_render_refuses_a_missing_value():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("attention.html", word_tiles=[], views=[])  # regions missing


def test_a_page_with_the_explorer_allows_exactly_its_script_by_hash(tmp_path):
    import base64
    import hashlib
    import html
    import re

    from diffexplain.report.html import EXPLORER_MARK, explorer_script

    def policy_of(page: str) -> str:  # as the browser reads the attribute
        return html.unescape(re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1))

    plain = write_page(tmp_path / "plain.html", "t", [Markup("<p>no explorer</p>")]).read_text()
    assert "script-src 'none'" in policy_of(plain) and "<script>" not in plain
    section = Markup(f'<div {EXPLORER_MARK}></div><script type="application/json" id="dx-explorer-data">'
                     f'{{"words": ["\\u003c/script\\u003e"]}}</script>')
    page = write_page(tmp_path / "explorer.html", "t", [section]).read_text()
    digest = base64.b64encode(hashlib.sha256(explorer_script().encode()).digest()).decode()
    policy = policy_of(page)
    assert f"script-src 'sha256-{digest}';" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert f"<script>{explorer_script()}</script>" in page  # the hashed text, byte for byte


def test_the_explorer_data_cannot_close_its_script_element():
    from diffexplain.report.html import _script_json

    text = str(_script_json({"words": ["</script><script>alert(1)</script>", "a & b"]}))
    assert "<" not in text and ">" not in text and "&" not in text
    import json

    assert json.loads(text)["words"][0] == "</script><script>alert(1)</script>"


def test_image_grid_labels_every_tile_under_it():
    from PIL import Image

    from diffexplain.report.figures import image_grid

    tiles = [Image.new("RGB", (16, 16), (200, 0, 0))] * 3
    plain = image_grid(tiles, columns=3, scale=2)
    labelled = image_grid(tiles, columns=3, scale=2, labels=["source", "a much longer label that wraps", "x"])
    assert labelled.width == plain.width and labelled.height > plain.height
    below = np.asarray(labelled)[plain.height:, :34]  # under the first tile: dark text pixels
    assert (below.sum(axis=2) < 300).any()
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        image_grid(tiles, columns=3, labels=["one"])
