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
