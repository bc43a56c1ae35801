"""The benchmarks are an importable package whose results go where they should."""

import importlib
import json

import pytest

MODULES = ("shapes_fidelity", "attention_maps", "word_attribution", "edits", "architectures", "distributed",
           "estimators", "papers")


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_imports_as_a_package_module_and_lists_its_parts(name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.PARTS
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert "--parts" in capsys.readouterr().out


def test_current_results_go_to_results_and_ad_hoc_runs_to_the_ignored_folder(tmp_path, monkeypatch):
    from benchmarks import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(_common, "AD_HOC", tmp_path / "runs")
    assert _common.write("x_part", dict(a=1), "# t\n", current=True) == tmp_path / "results"
    assert _common.write("y_part", dict(a=2), "# t\n", current=False) == tmp_path / "runs"
    payload = json.loads((tmp_path / "results" / "x_part.json").read_text())
    assert payload["a"] == 1 and payload["command"].startswith("python -m benchmarks.") and payload["commit"]
    assert (tmp_path / "runs" / "y_part.md").read_text() == "# t\n"


def test_ad_hoc_settings_are_not_current(monkeypatch):
    """A run with a non-default setting must not overwrite a current result."""
    from benchmarks import shapes_fidelity

    seen = []
    monkeypatch.setattr(shapes_fidelity, "load_pipeline", lambda model: type("P", (), {"scheduler": None})())
    monkeypatch.setattr(shapes_fidelity, "accuracy_part", lambda args, pipe: ({}, ""))
    monkeypatch.setattr(shapes_fidelity, "write", lambda name, payload, table, current: seen.append((name, current)))
    shapes_fidelity.main(["--parts", "accuracy"])
    shapes_fidelity.main(["--parts", "accuracy", "--n", "16"])
    shapes_fidelity.main(["--parts", "accuracy", "--name", "mine"])
    assert seen == [("shapes_fidelity_accuracy", True), ("shapes_fidelity_accuracy", False), ("mine_accuracy", False)]


def _ladder(seed: int):
    """A tiny IMACS ladder: 4 models on 12 tasks, quality and IMACS falling together (plus noise)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    models = []
    for level in range(4):
        rows = [dict(success=bool(rng.random() < 0.9 - 0.2 * level),
                     pixel_error=0.02 + 0.02 * level + 0.005 * rng.random(),
                     imacs_guidance=0.4 - 0.1 * level + 0.02 * rng.normal()) for _ in range(12)]
        models.append(dict(rows=rows, features=rng.normal(size=(12, 3)) + level))
    return models, rng.normal(size=(12, 3))


def test_the_imacs_ladder_correlation_is_deterministic_and_orders_a_clear_case():
    import numpy as np

    from benchmarks.papers import _ladder_correlation, _model_summary, ladder_tasks
    from diffexplain.metrics import bootstrap_ci

    models, targets = _ladder(0)
    every = np.arange(12)
    rho = _ladder_correlation(models, targets, "imacs_guidance", "pixel_error", every)
    assert rho == _ladder_correlation(*_ladder(0), "imacs_guidance", "pixel_error", every)  # same seed, same answer
    assert rho == 1.0  # IMACS falls with the model, pixel error rises: a perfect (signed) rank agreement
    summaries = [_model_summary(m, targets, every)["frechet"] for m in models]
    assert summaries == sorted(summaries)  # the features drift away from the targets down the ladder
    ci = bootstrap_ci(lambda pick: _ladder_correlation(models, targets, "imacs_guidance", "pixel_error", pick), 12,
                      n_resamples=50, seed=3)
    assert ci == bootstrap_ci(lambda pick: _ladder_correlation(models, targets, "imacs_guidance", "pixel_error", pick),
                              12, n_resamples=50, seed=3)
    first, again = ladder_tasks("insertion", 3, 9090), ladder_tasks("insertion", 3, 9090)
    assert [(t[0].caption, t[1]) for t in first] == [(t[0].caption, t[1]) for t in again]
    assert all((a[2] == b[2]).all() for a, b in zip(first, again))
