"""The bad-input table (docs/reliability.md) through the real CLI: each a one-line error naming the
argument (exit 2) or a documented behaviour, never a traceback, never silently accepted."""

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffexplain.cli.main import cli
from tests.helpers import tiny_image_pipeline, tiny_text2image

PROMPT = "a big red circle"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(tiny_text2image(tmp_path_factory.mktemp("model"))[2])


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def explain(model, out, *extra):
    return run("explain", PROMPT, "--model", model, "--method", "shapley", "--seeds", 1, "--steps", 2,
               "--embedder", "pixel", "--out", out, *extra)


@pytest.mark.parametrize("index, fragment", [
    (None, "has no model_index.json"), ("{oops", "is not JSON"),
    ({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}, "no folder unet/"),
])
def test_model_that_is_not_a_pipeline_folder(tmp_path, index, fragment):
    folder = tmp_path / "m"
    folder.mkdir()
    if index is not None:
        (folder / "model_index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    one_line_error(run("generate", "a red circle", "--model", folder, "--out", tmp_path / "x.png"),
                   "not a diffusers pipeline folder", fragment)


@pytest.mark.parametrize("where", ["out", "cache", "proc"])
def test_out_or_cache_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, monkeypatch, where):
    import diffexplain.models.loading as loading

    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = {"out": ("--out", blocker / "sub"), "cache": ("--out", tmp_path / "o", "--cache", blocker / "c.sqlite"),
            "proc": ("--out", tmp_path / "o", "--cache", "/proc/diffexplain/c.sqlite")}[where]
    result = run("explain", PROMPT, "--method", "shapley", *args)
    one_line_error(result, "--out" if where == "out" else "--cache")


def test_runs_checking_one_folder_at_once_do_not_remove_each_others_probe(tmp_path):
    """Two runs sharing a cache folder check it at the same moment; a probe file of one shared name
    let one run delete the other's before it did, and that run stopped with "cannot be written"."""
    from concurrent.futures import ThreadPoolExecutor

    from diffexplain.cli._common import writable_folder

    with ThreadPoolExecutor(8) as pool:
        checked = list(pool.map(lambda _: writable_folder(tmp_path / "shared", "--cache"), range(400)))
    assert checked == [tmp_path / "shared"] * 400 and list((tmp_path / "shared").iterdir()) == []


def test_garbage_cache_is_named_and_repair_keeps_the_readable_rows(tmp_path, model):
    out = tmp_path / "o"
    assert explain(model, out).exit_code == 0
    cache = out / "cache.sqlite"
    rows = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM images").fetchone()[0]
    garbage = tmp_path / "g"
    garbage.mkdir()
    (garbage / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    one_line_error(explain(model, garbage), "cache.sqlite is not a readable generation cache", "--repair-cache")
    repaired = explain(model, garbage, "--repair-cache")
    assert repaired.exit_code == 0, repaired.output
    assert list(garbage.glob("cache.sqlite.corrupt-*"))
    # a truncated copy of a good cache: whatever rows still read are kept, the rest regenerated
    truncated = tmp_path / "t"
    truncated.mkdir()
    data = cache.read_bytes()
    (truncated / "cache.sqlite").write_bytes(data[: len(data) // 2])
    result = explain(model, truncated, "--repair-cache")
    assert result.exit_code == 0, result.output
    assert sqlite3.connect(truncated / "cache.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0] == rows
    a = json.loads((out / "explanation.json").read_text())["values"]
    b = json.loads((truncated / "explanation.json").read_text())["values"]
    np.testing.assert_allclose(a, b)


def test_a_corrupt_png_in_the_cache_is_regenerated_and_the_rest_kept(tmp_path, model):
    out = tmp_path / "o"
    assert explain(model, out).exit_code == 0
    before = json.loads((out / "explanation.json").read_text())
    connection = sqlite3.connect(out / "cache.sqlite")
    key = connection.execute("SELECT key FROM images LIMIT 1").fetchone()[0]
    with connection:
        connection.execute("UPDATE images SET png = ? WHERE key = ?", (b"\x89PNG broken", key))
        connection.execute("DELETE FROM embeddings WHERE key = ?", (key,))
    with pytest.warns(RuntimeWarning, match="did not decode"):
        again = explain(model, out)
    assert again.exit_code == 0, again.output
    after = json.loads((out / "explanation.json").read_text())
    assert after["n_cached"] == before["n_generations"] - 1
    # the image is made again in a batch of one: float reductions differ slightly from its first batch
    np.testing.assert_allclose(after["values"], before["values"], rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("arg, fragment", [
    ("num_images=2", "'num_images' is not an argument of StableDiffusionPipeline; it takes:"),
    ("eta=fast", "'eta' must be float like its default 0.0, got str 'fast'"),
    ("guidance_rescale=true", "'guidance_rescale' must be float"),
    ("num_inference_steps=3", "is set by diffexplain (--steps)"),
])
def test_a_bad_pipeline_arg_names_the_key(tmp_path, model, arg, fragment):
    one_line_error(run("generate", "a red circle", "--model", model, "--pipeline-arg", arg,
                       "--out", tmp_path / "x.png"), fragment)


def test_a_word_unsafe_in_a_file_name_is_shown_and_files_are_named_by_index(tmp_path):
    """A closed-vocabulary model refuses it by name; an open one maps it, files named word00, word01..."""
    from tests.families import tiny_sd

    pipe = tiny_sd(tmp_path)
    out = tmp_path / "att"
    result = run("attention", "a red/blue <b>circle</b>", "--model", tmp_path / "sd", "--steps", 2, "--views", "time",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert pipe is not None and (out / "overlay_word01.png").is_file() and (out / "heatmap_word02.png").is_file()
    page = (out / "report.html").read_text()
    assert "red/blue" in page and "&lt;b&gt;circle&lt;/b&gt;" in page and "<b>circle</b>" not in page


def _image(path, size, value=128):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def test_an_all_black_inpainting_mask_is_refused(tmp_path):
    tiny_image_pipeline(tmp_path, "inpaint")
    source, mask = _image(tmp_path / "s.png", (16, 16)), _image(tmp_path / "m.png", (16, 16), 0)
    one_line_error(run("edit", "a red circle", "--model", tmp_path / "tiny-inpaint", "--image", source,
                       "--mask", mask, "--out", tmp_path / "o"), "mask is all black")


@pytest.mark.parametrize("size", [(32, 32), (10, 6)])
def test_a_source_of_another_size_than_the_models_is_refused_with_both_sizes(tmp_path, size):
    tiny_image_pipeline(tmp_path, "pix2pix")
    source = _image(tmp_path / "s.png", size)
    one_line_error(run("edit", "make it red", "--model", tmp_path / "tiny-pix2pix", "--image", source,
                       "--out", tmp_path / "o"), f"image is {size[0]}x{size[1]}", "the model generates 16x16")


def test_negative_guidance_is_refused(tmp_path, model):
    one_line_error(run("generate", "a red circle", "--model", model, "--guidance", "-3", "--out", tmp_path / "x.png"),
                   "guidance_scale must be >= 0")


def test_a_huge_job_prints_its_plan_and_asks_first(tmp_path, model):
    result = run("explain", PROMPT, "--model", model, "--method", "shapley", "--seeds", 100000, "--steps", 2,
                 "--embedder", "pixel", "--out", tmp_path / "o")
    one_line_error(result, "1600000 new generation(s) planned", "pass --yes")
    assert not (tmp_path / "o" / "explanation.json").exists()
    dry = run("explain", PROMPT, "--model", model, "--method", "kernelshap", "--seeds", 2, "--steps", 2,
              "--embedder", "pixel", "--dry-run", "--out", tmp_path / "d")
    assert dry.exit_code == 0 and "32 new generation(s) planned" in dry.output and "min at" in dry.output
    rows = sqlite3.connect(tmp_path / "d" / "cache.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert rows == 0 and not (tmp_path / "d" / "explanation.json").exists()


def test_one_seed_prints_no_nan_error_bars(tmp_path, model):
    result = explain(model, tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "± nan" not in result.output and "no error bars" in result.output


def test_a_second_method_into_a_used_folder_is_refused(tmp_path, model):
    out = tmp_path / "o"
    assert explain(model, out).exit_code == 0
    result = run("explain", PROMPT, "--model", model, "--method", "kernelshap", "--seeds", 1, "--steps", 2,
                 "--embedder", "pixel", "--out", out)
    one_line_error(result, "already holds a shapley explanation", "--cache")
    shared = run("explain", PROMPT, "--model", model, "--method", "kernelshap", "--seeds", 1, "--steps", 2,
                 "--embedder", "pixel", "--out", tmp_path / "k", "--cache", out / "cache.sqlite")
    assert shared.exit_code == 0 and "(16 from the cache)" in shared.output


def test_the_thread_count_is_in_the_cache_key_and_the_explanation(tmp_path, model):
    import torch

    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    adapter = TextToImageAdapter(load_pipeline(model), num_inference_steps=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = adapter.settings()
        torch.set_num_threads(2)
        two = adapter.settings()
    finally:
        torch.set_num_threads(threads)
    assert one["torch_threads"] == 1 and two["torch_threads"] == 2
    result = explain(model, tmp_path / "o", "--threads", 1)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "explanation.json").read_text())["settings"]["torch_threads"] == 1
    again = explain(model, tmp_path / "o2", "--threads", 2, "--cache", tmp_path / "o" / "cache.sqlite")
    assert again.exit_code == 0 and "(0 from the cache)" in again.output


def test_every_command_takes_threads_and_verbose():
    from diffexplain.cli.main import cli as group

    for name, command in group.commands.items():
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"--threads", "--verbose"} <= options, name


def test_output_says_what_the_user_needs_and_nothing_else(tmp_path):
    """No third-party chatter (accelerate, deprecations, the EfficientNet loader's print) unless --verbose."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli_path = str(Path(sys.executable).with_name("diffexplain"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    args = [cli_path, "explain", "a big red circle", "--method", "kernelshap", "--seeds", "1", "--steps", "2"]
    quiet = subprocess.run(args + ["--out", str(tmp_path / "q")], env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    text = quiet.stdout + quiet.stderr
    for noise in ("accelerate", "Loaded pretrained", "Warning", "deprecat", "Loading pipeline components"):
        assert noise not in text, (noise, text)
    assert "new generation(s) planned" in quiet.stdout and "wrote" in quiet.stdout


def test_flux_kontext_says_what_size_it_reads_the_source_at(tmp_path):
    from diffexplain.models.edit_adapter import EditAdapter
    from tests.families import tiny_flux, variant

    kontext = variant(tiny_flux(tmp_path), "FluxKontextPipeline", tmp_path)
    source = np.full((16, 16, 3), 100, np.uint8)
    note = EditAdapter(kontext, image=source, num_inference_steps=2, height=16, width=16).size_note()
    assert note is not None and "_auto_resize=false" in note and "16x16" in note
    kept = EditAdapter(kontext, image=source, num_inference_steps=2, height=16, width=16,
                       pipeline_kwargs={"_auto_resize": False})
    assert kept.size_note() is None
