from click.testing import CliRunner

from diffexplain.cli.main import cli


def test_env_prints_versions():
    result = CliRunner().invoke(cli, ["env"])
    assert result.exit_code == 0, result.output
    assert "- torch: 2.13.0" in result.output
    assert "- diffusers:" in result.output


def test_generate_rejects_unknown_words_naming_them(tmp_path):
    result = CliRunner().invoke(cli, ["generate", "a red hexagon", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "'hexagon'" in result.output
    assert "Vocabulary:" in result.output
    assert not (tmp_path / "x.png").exists()


def test_generate_writes_a_png(tmp_path):
    out = tmp_path / "img.png"
    result = CliRunner().invoke(cli, ["generate", "a big red circle on the left", "--seed", "3",
                                      "--steps", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(out).size == (64, 64)
