"""Notebook views: figures without pyplot, escaped HTML, and shap interoperation."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest

from diffexplain.types import Explanation

HOSTILE = "<script>window.pwned=1</script>"


def _explanation(words=("a", "red", HOSTILE)) -> Explanation:
    return Explanation(method="kernelshap", features=tuple(words), values=np.array([0.1, 0.7, -0.2]),
                       base_value=-1.0, full_value=-0.4, stderr=np.array([0.01, 0.02, np.nan]),
                       settings=dict(similarity="neg_l2"), metadata=dict(prompt=f"a red {HOSTILE}"))


def test_explanation_plot_is_a_figure_drawn_without_pyplot_and_into_given_axes():
    import matplotlib.pyplot as plt

    before = (matplotlib.get_backend(), plt.get_fignums())
    figure = _explanation().plot()
    assert len(figure.axes[0].patches) == 3 and "neg_l2" in figure.axes[0].get_ylabel()
    assert (matplotlib.get_backend(), plt.get_fignums()) == before
    from matplotlib.figure import Figure

    mine = Figure()
    ax = mine.subplots()
    assert _explanation().plot(ax=ax) is mine and len(ax.patches) == 3


def test_explanation_html_escapes_every_word_and_the_prompt():
    page = _explanation()._repr_html_()
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "+0.7000" in page and "0.0200" in page


def test_to_shap_gives_a_shap_explanation_and_says_what_is_missing_without_shap(monkeypatch):
    import shap  # in the test extra: this check runs wherever the suite does

    converted = _explanation(("a", "red", "circle")).to_shap()
    assert isinstance(converted, shap.Explanation)
    np.testing.assert_allclose(converted.values, [0.1, 0.7, -0.2], rtol=1e-6)
    assert converted.base_values == -1.0 and list(converted.feature_names) == ["a", "red", "circle"]
    monkeypatch.setitem(sys.modules, "shap", None)
    with pytest.raises(ImportError, match="pip install shap"):
        _explanation().to_shap()


def test_attention_maps_and_audit_summaries_show_themselves(tmp_path):
    from diffexplain.attention import record_prompt
    from diffexplain.explain.audit import summarise
    from diffexplain.models.adapter import TextToImageAdapter
    from tests.helpers import tiny_text2image

    pipe, _, _ = tiny_text2image(tmp_path)
    adapter = TextToImageAdapter(pipe, num_inference_steps=2)
    image, maps = record_prompt(adapter, "a big red circle", 0)
    figure = maps.plot("red", image)
    assert figure.axes[0].get_title() == "red" and len(figure.axes[0].images) == 2
    page = maps._repr_html_()
    assert page.count("<img") == 4 and "a big red circle" in page
    summary = summarise([_explanation(("a", "red", "circle")), _explanation(("a", "blue", "square"))])
    assert len(summary.plot(min_count=1).axes[0].patches) == 5
    assert "mean share" in summary._repr_html_()
