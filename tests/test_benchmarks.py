"""The benchmarks are an importable package whose results go where they should."""

import importlib
import json

import pytest

MODULES = ("shapes_fidelity", "attention_maps", "word_attribution", "edits", "architectures", "distributed")


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
