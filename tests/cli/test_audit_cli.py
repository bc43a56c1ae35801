"""``diffexplain audit`` from the command line: dry run, run, re-run."""

import json

from click.testing import CliRunner

from diffexplain.cli.main import cli
from tests.helpers import tiny_text2image


def test_audit_dry_run_then_run_then_a_rerun_that_generates_nothing(tmp_path):
    _, _, model = tiny_text2image(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two groups\nred\ta big red circle\nred\ta red square\nblue\ta big blue circle\n"
                       "blue\ta blue square\n")
    out = tmp_path / "audit"
    common = ["audit", str(prompts), "--model", str(model), "--method", "kernelshap", "--seeds", "1",
              "--embedder", "pixel", "--steps", "2", "--out", str(out)]
    dry = CliRunner().invoke(cli, common + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    planned = int(dry.output.split(" generations for 4 prompts")[0].split()[-1])
    assert planned > 0 and not (out / "summary.json").exists()
    run = CliRunner().invoke(cli, common)
    assert run.exit_code == 0, run.output
    assert f"{planned} new generations" in run.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_prompts"] == 4 and summary["groups"] == ["red", "blue"]
    assert {w for w, _ in summary["differences"]} >= {"a", "circle", "square"}
    assert "Which words drive the model" in (out / "report.html").read_text()
    again = CliRunner().invoke(cli, common)
    assert again.exit_code == 0 and "0 new generations" in again.output
    bad = CliRunner().invoke(cli, ["audit", str(tmp_path / "none.txt"), "--out", str(out)])
    assert bad.exit_code == 2 and "no such file" in bad.output


def test_audit_to_a_tolerance_records_each_prompts_rounds(tmp_path):
    _, _, model = tiny_text2image(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a big red circle on the left\na blue square\n")
    out = tmp_path / "audit"
    run = CliRunner().invoke(cli, ["audit", str(prompts), "--model", str(model), "--method", "kernelshap", "--seeds",
                                   "2", "--embedder", "pixel", "--steps", "2", "--tolerance", "1e-9", "--budget", "20",
                                   "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "coalitions: worst standard error" in run.output
    first = json.loads((out / "prompts" / "0000" / "explanation.json").read_text())
    assert first["settings"]["tolerance"] == 1e-9 and [r["budget"] for r in first["info"]["rounds"]] == [16, 20]
