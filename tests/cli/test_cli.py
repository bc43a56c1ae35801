from click.testing import CliRunner

from diffexplain.cli.main import cli


def test_env_prints_versions():
    import torch

    result = CliRunner().invoke(cli, ["env"])
    assert result.exit_code == 0, result.output
    assert f"- torch: {torch.__version__.split('+')[0]}" in result.output
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


def _tiny_model_dir(tmp_path):
    from tests.helpers import tiny_text2image

    return str(tiny_text2image(tmp_path / "model")[2])


def test_explain_writes_json_and_a_self_contained_report(tmp_path, monkeypatch):
    import json

    from diffexplain.explain.prompt_game import PromptGame

    games = []
    original = PromptGame.__init__
    monkeypatch.setattr(PromptGame, "__init__", lambda self, *a, **k: games.append(1) or original(self, *a, **k))
    model = _tiny_model_dir(tmp_path)
    out = tmp_path / "out"
    args = ["explain", "a big red circle", "--model", model, "--method", "smile", "--budget", "10", "--seeds", "1",
            "--steps", "2", "--out", str(out), "--attention"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["features"] == ["a", "big", "red", "circle"]
    assert len(data["pvalues"]) == 4 and data["n_generations"] == 10
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "src='http" not in report
    assert "Surrogate fit" in report and "Where each word lands" in report
    assert "Perturbed prompts and their images" in report and "Embedding map" in report
    # the plan's stand-in game (it counts generations before any work), then the explanation's own;
    # the report is built from that one, not from a third
    assert len(games) == 2
    again = CliRunner().invoke(cli, args)  # the cache in OUT makes the re-run free
    assert again.exit_code == 0, again.output
    assert json.loads((out / "explanation.json").read_text())["n_cached"] == 10


def test_explain_reports_bad_input_as_usage_errors(tmp_path):
    model = _tiny_model_dir(tmp_path)
    result = CliRunner().invoke(cli, ["explain", "a red circle", "--model", model, "--method", "kernelshap",
                                      "--budget", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "budget=2 is too small for kernelshap" in result.output
    result = CliRunner().invoke(cli, ["explain", "a red circle", "--model", str(tmp_path / "missing"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "model must be" in result.output
    result = CliRunner().invoke(cli, ["explain", "a red circle", "--model", model, "--embedder", "pixel",
                                      "--embedder-size", "128", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "embedder_size applies to the 'efficientnet' embedder" in result.output


def test_attention_writes_heatmaps_views_and_regions(tmp_path):
    model = _tiny_model_dir(tmp_path)
    out = tmp_path / "att"
    result = CliRunner().invoke(cli, ["attention", "a big red circle", "--model", model, "--steps", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("attention.json", "attention.safetensors", "report.html", "regions.json", "view_time.png",
                 "view_head.png", "view_layer.png", "overlay_word02.png", "heatmap_word03.png"):
        assert (out / name).exists(), name
    import json

    every_layer = json.loads((out / "regions.json").read_text())["layers"]
    assert every_layer == json.loads((out / "attention.json").read_text())["layers"]  # not a shapes model
    fine = tmp_path / "fine"
    result = CliRunner().invoke(cli, ["attention", "a big red circle", "--model", model, "--steps", "2",
                                      "--views", "time", "--min-grid", "8", "--out", str(fine)])
    assert result.exit_code == 0, result.output
    assert 0 < len(json.loads((fine / "regions.json").read_text())["layers"]) < len(every_layer)
    bad = CliRunner().invoke(cli, ["attention", "a red circle", "--model", model, "--views", "space",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "views must be among" in bad.output


def test_edit_explains_an_instruction_with_the_source_fixed(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from tests.helpers import tiny_image_pipeline

    tiny_image_pipeline(tmp_path, "pix2pix")
    source = tmp_path / "source.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(source)
    out = tmp_path / "edit"
    result = CliRunner().invoke(cli, ["edit", "make the circle blue", "--image", str(source), "--model",
                                      str(tmp_path / "tiny-pix2pix"), "--method", "smile", "--budget", "8",
                                      "--seeds", "1", "--steps", "2", "--image-guidance", "1.5",
                                      "--reference", "source", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["features"] == ["make", "the", "circle", "blue"] and data["settings"]["reference"] == "source"
    assert "Source and edit" in (out / "report.html").read_text()
    missing = CliRunner().invoke(cli, ["edit", "make it blue", "--image", str(tmp_path / "nope.png"), "--model",
                                       str(tmp_path / "tiny-pix2pix"), "--out", str(out)])
    assert missing.exit_code == 2 and "could not be read" in missing.output



def test_edit_defaults_to_the_builtin_pix2pix_and_ranks_its_content_words(tmp_path):
    """On the shipped shapes InstructPix2Pix, exact Shapley puts the instruction's colour and shape
    words above its filler words; an unknown word is refused by name."""
    import json

    from PIL import Image

    from diffexplain_shapes.scene import Scene, ShapeObject

    source = tmp_path / "source.png"
    scene = Scene(objects=(ShapeObject(colour="red", shape="circle", size="big", position="centre", x=32.0, y=32.0),))
    Image.fromarray(scene.render()).save(source)
    out = tmp_path / "edit"
    result = CliRunner().invoke(cli, ["edit", "please make the circle blue", "--image", str(source),
                                      "--method", "shapley", "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    values = dict(zip(data["features"], data["values"]))
    assert data["settings"]["num_inference_steps"] == 20 and data["settings"]["guidance_scale"] == 4.0
    assert min(values["circle"], values["blue"]) > max(values["please"], values["the"])
    unknown = CliRunner().invoke(cli, ["edit", "make the circle teal", "--image", str(source), "--out", str(out)])
    assert unknown.exit_code == 2 and "'teal'" in unknown.output


def test_edit_on_the_builtin_inpaint_model_ranks_the_masked_objects_words(tmp_path):
    """On the shipped shapes inpainting model with the generation pasted into the mask, exact
    Shapley puts the masked object's colour and shape words above the filler and the visible
    object's words; instruction words are refused (the model reads captions)."""
    import json

    from PIL import Image

    from diffexplain_shapes.scene import Scene, ShapeObject
    from diffexplain_shapes.tasks import box_mask

    scene = Scene(objects=(ShapeObject(colour="red", shape="circle", size="big", position="left", x=18.0, y=32.0),
                           ShapeObject(colour="blue", shape="square", size="big", position="right", x=46.0, y=32.0)))
    source, mask = tmp_path / "source.png", tmp_path / "mask.png"
    Image.fromarray(scene.render()).save(source)
    Image.fromarray(box_mask(scene, 0).astype("uint8") * 255).save(mask)
    out = tmp_path / "inpaint"
    result = CliRunner().invoke(cli, ["edit", "red circle and blue square", "--image", str(source), "--mask",
                                      str(mask), "--model", "inpaint", "--composite", "--method", "shapley",
                                      "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    values = json.loads((out / "explanation.json").read_text())["values"]
    red, circle, and_, blue, square = values
    assert min(red, circle) > max(and_, blue, square)
    refused = CliRunner().invoke(cli, ["edit", "please make the circle red", "--image", str(source), "--mask",
                                       str(mask), "--model", "inpaint", "--out", str(out)])
    assert refused.exit_code == 2 and "'please'" in refused.output


def test_i2am_writes_maps_imacs_and_a_report(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from tests.helpers import tiny_paint_by_example

    tiny_paint_by_example(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "ref.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "i2am"
    args = ["i2am", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--reference",
            str(tmp_path / "ref.png"), "--model", str(tmp_path / "tiny-pbe"), "--steps", "5", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "i2am.json").read_text())
    assert np.isfinite(summary["imacs_r2g"]) and "rollout" in summary["g2r"]
    assert summary["imacs_g2r"] is None  # no reference mask given
    assert (out / "report.html").exists() and (out / "r2g_overlay.png").exists()
    assert np.isfinite(summary["imacs_guidance"]) and (out / "guidance_overlay.png").exists()
    assert "guidance difference" in (out / "report.html").read_text()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small-mask.png")
    bad = CliRunner().invoke(cli, [*args[:3], "--mask", str(tmp_path / "small-mask.png"), *args[5:]])
    assert bad.exit_code == 2 and "source image's size" in bad.output
    reference_mask = np.zeros((8, 8), np.uint8)
    reference_mask[2:6, 2:6] = 255
    Image.fromarray(reference_mask).save(tmp_path / "ref-mask.png")
    scored = CliRunner().invoke(cli, [*args, "--reference-mask", str(tmp_path / "ref-mask.png")])
    assert scored.exit_code == 0, scored.output
    assert np.isfinite(json.loads((out / "i2am.json").read_text())["imacs_g2r"])
    wrong = CliRunner().invoke(cli, [*args, "--reference-mask", str(tmp_path / "mask.png")])  # 16x16, not 8x8
    assert wrong.exit_code == 2 and "reference_mask" in wrong.output


def test_demo_runs_the_main_job_on_the_builtin_models(tmp_path):
    """`make demo`'s command: generation checked against captions, a word explanation, an edit, an insertion
    and an inpainting."""
    import json

    out = tmp_path / "demo<script>__pwned=1</script>"  # a hostile folder name: its report runs no script
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from tests.reliability.test_injection import browser_or_skip, check_page

    driver = browser_or_skip()
    try:
        check_page(driver, out / "explanation" / "report.html")
    finally:
        driver.quit()
    data = json.loads((out / "demo.json").read_text())
    assert len(data["samples"]) == 8 and 0.0 <= data["auc"] <= 1.0
    assert data["edit"]["features"] == data["edit"]["instruction"].split()
    assert isinstance(data["edit"]["done"], bool) and 0.0 <= data["edit"]["auc"] <= 1.0
    assert abs(data["insertion"]["imacs_guidance"]) < 4 and abs(data["insertion"]["imacs_r2g"]) < 4
    assert data["insertion"]["imacs_g2r"] > 0  # the encoder's map lies on the reference object
    assert isinstance(data["inpainting"]["done"], bool) and abs(data["inpainting"]["imacs_words"]) < 4
    for name in ("samples.png", "edit.png", "insertion.png", "inpainting.png", "explanation/report.html"):
        assert (out / name).exists(), name


def test_default_guidance_is_the_shapes_choice_only_for_the_builtin_model(tmp_path):
    """1.5 was chosen on the shapes world (its diffexplain.json); a user's own pipeline gets GENERIC's 7.5."""
    from diffexplain.cli._common import build_adapter
    from diffexplain.models.defaults import GENERIC

    assert build_adapter("shapes", None, None).guidance_scale == 1.5
    assert build_adapter(_tiny_model_dir(tmp_path), None, None).guidance_scale == GENERIC.guidance_scale == 7.5
    assert build_adapter(_tiny_model_dir(tmp_path / "b"), None, 6.0).guidance_scale == 6.0


def test_explain_at_two_fidelities_and_to_a_tolerance_through_the_command_line(tmp_path):
    import json

    model = _tiny_model_dir(tmp_path)
    out = tmp_path / "mf"
    result = CliRunner().invoke(cli, ["explain", "a big red circle", "--model", model, "--embedder", "pixel",
                                      "--seeds", "1", "--steps", "6", "--fidelity", "steps=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "explanation.json").read_text())
    assert saved["method"] == "multifidelity" and saved["settings"]["fidelity"] == "steps=2"
    assert saved["info"]["cost_ratio_stated"] == 2 / 6
    result = CliRunner().invoke(cli, ["explain", "a big red circle", "--model", model, "--embedder", "pixel",
                                      "--steps", "2", "--tolerance", "1e-9", "--budget", "12",
                                      "--out", str(tmp_path / "tol")])
    assert result.exit_code == 0, result.output
    assert "coalitions: worst standard error" in result.output
    bad = CliRunner().invoke(cli, ["explain", "a red circle", "--model", model, "--fidelity", "steps=0",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "fidelity 'steps=0'" in bad.output and "Traceback" not in bad.output
