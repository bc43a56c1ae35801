import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffexplain_shapes import pipelines as shapes
from training import train_edits


@pytest.mark.parametrize("kind", ["pix2pix", "paint_by_example"])
def test_edit_training_smoke_and_export(tmp_path, kind):
    """Two optimisation steps from the shipped text2image model, then an exported pipeline that loads and runs."""
    run = tmp_path / "run"
    pix2pix_only = ["--filler-drop", "0.5", "--kind-weights", "add=2,move=2"] if kind == "pix2pix" else []
    train_edits.main([kind, "--run-dir", str(run), "--steps", "2", "--batch", "2", "--pool", "8", "--refresh", "2",
                      "--word-drop", "0.5", *pix2pix_only])
    dest = tmp_path / "weights"
    train_edits.main(["export", "--kind", kind, "--run-dir", str(run), "--dest", str(dest)])
    from diffexplain.models.edit_adapter import EditAdapter, PaintByExampleAdapter
    from diffexplain.models.loading import load_pipeline

    pipe = load_pipeline(str(dest))
    name = {"pix2pix": "instruct_pix2pix"}.get(kind, kind)
    assert (dest / "diffexplain.json").read_text() == shapes.marker(name)  # the candidate runs with its defaults
    base = json.loads((shapes.weights_path("text2image") / "scheduler" / "scheduler_config.json").read_text())
    assert pipe.scheduler.config.prediction_type == base["prediction_type"]  # trained on the base's target
    # the VAE is the base's, and so is the record of its decoder's fine-tune
    base_record = json.loads((shapes.weights_path("text2image") / "training.json").read_text())
    record = json.loads((dest / "training.json").read_text())
    assert record["vae_decoder_backgrounds"] == base_record["vae_decoder_backgrounds"]
    if kind == "pix2pix":
        # the exported tokenizer must never ask the hub, even when exported without the offline variables
        # (transformers then records local_files_only=False unless it is passed)
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(train_edits.__file__).parents[1]),
                                                          env.get("PYTHONPATH")]))
        online = tmp_path / "exported_online"
        subprocess.run([sys.executable, "-m", "training.train_edits", "export", "--kind", kind, "--run-dir",
                        str(run), "--dest", str(online)], check=True, env=env, capture_output=True)
        for exported in (dest, online):
            config = json.loads((exported / "tokenizer" / "tokenizer_config.json").read_text())
            assert config["local_files_only"] is True
        # averaged with (a copy of) the shipped model, in place: every weight is the mean, and the record
        # keeps both sides, the other side's read before its folder is replaced
        import shutil

        shipped = shapes.weights_path("instruct_pix2pix")
        mixed = tmp_path / "mixed"
        shutil.copytree(shipped, mixed)
        train_edits.main(["export", "--kind", kind, "--run-dir", str(run), "--dest", str(mixed),
                          "--average-with", str(mixed), "--mix", "0.5"])
        import torch

        ours = pipe.unet.conv_in.weight.detach()
        theirs = load_pipeline(str(shipped)).unet.conv_in.weight.detach().float()
        assert torch.allclose(load_pipeline(str(mixed)).unet.conv_in.weight.detach(), (ours + theirs) / 2, atol=1e-6)
        record = json.loads((mixed / "training.json").read_text())
        assert record["mix"] == 0.5 and record["averaged_with"] == str(mixed)
        assert record["averaged_record"] == json.loads((shipped / "training.json").read_text())
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    if kind == "paint_by_example":
        adapter = PaintByExampleAdapter(pipe, image=source, mask=mask, reference=source, num_inference_steps=2)
        image = adapter.generate([0])
    elif kind == "pix2pix":
        image = EditAdapter(pipe, image=source, image_guidance_scale=1.5, num_inference_steps=2).generate(
            ["please make the red circle blue"], [0])
    else:
        image = EditAdapter(pipe, image=source, mask=mask, num_inference_steps=2).generate(["a red circle"], [0])
    assert image.shape == (1, 64, 64, 3)


def test_filler_dropout_removes_only_fillers_and_keeps_the_order():
    from diffexplain_shapes.edits import sample_edit

    rng = np.random.default_rng(0)
    seen_sizes = set()
    for _ in range(200):
        edit = sample_edit(rng, split="train")
        words = edit.instruction.split()
        fillers = [w.role == "filler" for w in edit.words]
        kept = train_edits.drop_fillers(words, fillers, rng).split()
        content = [w for w, f in zip(words, fillers) if not f]
        assert [w for w in kept if w in content] == content  # every content word, in order
        it = iter(words)
        assert all(w in it for w in kept)  # a subsequence of the instruction
        seen_sizes.add(len(kept) - len(content))
    assert 0 in seen_sizes and max(seen_sizes) >= 4  # from no fillers to many


def test_kind_weights_shape_the_pool_and_bad_specs_are_refused(tmp_path):
    p = train_edits.parse_kind_weights("add=2,move=2")
    assert p.sum() == pytest.approx(1.0)
    assert dict(zip(train_edits.EDIT_KINDS, p)) == pytest.approx(dict(recolour=0.125, reshape=0.125, resize=0.125,
                                                                       move=0.25, remove=0.125, add=0.25))
    assert train_edits.parse_kind_weights(None) is None
    rng = np.random.default_rng(1)
    weighted = [train_edits._sample("pix2pix", rng, p)["kind"] for _ in range(400)]
    uniform = [train_edits._sample("pix2pix", rng)["kind"] for _ in range(400)]
    assert 0.18 < weighted.count("add") / 400 < 0.32 and 0.18 < weighted.count("move") / 400 < 0.32
    assert uniform.count("add") + uniform.count("move") < weighted.count("add") + weighted.count("move")
    for bad in ("ad=2", "add", "add=-1", "add=0,move=0,recolour=0,reshape=0,resize=0,remove=0"):
        with pytest.raises(ValueError, match="kind_weights"):
            train_edits.parse_kind_weights(bad)
    with pytest.raises(SystemExit):
        train_edits.main(["paint_by_example", "--run-dir", str(tmp_path / "run"), "--filler-drop", "0.3"])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["--word-drop", "--filler-drop"])
@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_dropout_shares_outside_0_1_are_refused_before_any_work(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        train_edits.main(["pix2pix", "--run-dir", str(tmp_path / "run"), flag, value])
    assert f"{flag} must be in [0, 1], got {float(value)}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_widened_unet_starts_as_the_base_denoiser(shapes_pipe):
    import torch

    wide = train_edits.widen_conv_in(shapes_pipe.unet, 16)
    latents = torch.randn(1, 8, 16, 16)
    context = torch.randn(1, 32, 128)
    base = shapes_pipe.unet(latents, 500, context).sample
    extended = wide(torch.cat([latents, torch.randn(1, 8, 16, 16)], dim=1), 500, context).sample
    torch.testing.assert_close(base, extended)


def test_extended_text_encoder_keeps_shared_words():
    from diffexplain_shapes.edits import instruction_vocabulary

    pipe = shapes.load("text2image")
    import tempfile
    from pathlib import Path

    tokenizer = shapes.build_tokenizer(Path(tempfile.mkdtemp()), instruction_vocabulary())
    extended = train_edits.extend_text_encoder(pipe.text_encoder, pipe.tokenizer, tokenizer)
    old = pipe.text_encoder.get_input_embeddings().weight
    new = extended.get_input_embeddings().weight
    for word in ("red", "circle", "left"):
        i = pipe.tokenizer(word, add_special_tokens=False).input_ids[0]
        j = tokenizer(word, add_special_tokens=False).input_ids[0]
        assert (old[i] == new[j]).all()
    assert len(tokenizer(["please make it blue"]).input_ids[0]) == 4 + 2


def test_inpainting_on_the_8_channel_shapes_vae_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="needs a VAE with 4 latent channels.*train_edits narrow"):
        train_edits.main(["inpaint", "--run-dir", str(tmp_path / "run"), "--steps", "1", "--pool", "4"])


@pytest.mark.parametrize("kind", ["pix2pix", "paint_by_example"])
def test_fine_tune_starts_from_the_exported_weights_and_keeps_the_record(tmp_path, kind):
    """A run started with --init-from at learning rate 0 exports exactly the weights it started from."""
    import torch
    from safetensors.torch import load_file

    common = ["--batch", "2", "--pool", "8", "--refresh", "2"]
    train_edits.main([kind, "--run-dir", str(tmp_path / "a"), "--steps", "1", *common])
    train_edits.main(["export", "--kind", kind, "--run-dir", str(tmp_path / "a"), "--dest", str(tmp_path / "wa")])
    train_edits.main([kind, "--run-dir", str(tmp_path / "b"), "--steps", "1", "--lr", "0", *common,
                      "--init-from", str(tmp_path / "wa")])
    train_edits.main(["export", "--kind", kind, "--run-dir", str(tmp_path / "b"), "--dest", str(tmp_path / "wb")])
    for part in ("unet", "text_encoder" if kind == "pix2pix" else "image_encoder"):
        before = load_file(next((tmp_path / "wa" / part).glob("*.safetensors")))
        after = load_file(next((tmp_path / "wb" / part).glob("*.safetensors")))
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
    record = json.loads((tmp_path / "wb" / "training.json").read_text())
    assert record["total_steps"] == 2 and record["earlier_run"]["steps"] == 1
    assert record["init_from"] == str(tmp_path / "wa")
    # a fine-tune of a fine-tune keeps the whole chain
    train_edits.main([kind, "--run-dir", str(tmp_path / "c"), "--steps", "1", "--lr", "0", *common,
                      "--init-from", str(tmp_path / "wb")])
    train_edits.main(["export", "--kind", kind, "--run-dir", str(tmp_path / "c"), "--dest", str(tmp_path / "wc")])
    chain = json.loads((tmp_path / "wc" / "training.json").read_text())
    assert chain["total_steps"] == 3 and chain["init_from"] == str(tmp_path / "wb")
    assert chain["earlier_run"]["init_from"] == str(tmp_path / "wa")


def test_fine_tune_refuses_a_pipeline_of_another_kind(tmp_path):
    with pytest.raises(ValueError, match="not 'instruct_pix2pix'"):
        train_edits.main(["pix2pix", "--run-dir", str(tmp_path / "run"), "--steps", "1", "--pool", "4",
                          "--init-from", str(shapes.weights_path("text2image"))])


def _scene_batch(n: int, seed: int = 0):
    from diffexplain_shapes.scene import sample_scene

    rng = np.random.default_rng(seed)
    return train_edits._images_from(sample_scene(rng, split="train").render() for _ in range(n))


def test_narrowed_pipeline_is_text2image_restricted_to_the_basis():
    """Encoder mean and UNet are the 8-channel model's, projected exactly (no training)."""
    import torch

    base = shapes.load("text2image")
    basis = torch.linalg.qr(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))[0]
    pipe = train_edits.narrow_pipeline(base, basis)
    assert pipe.vae.config.latent_channels == 4
    assert pipe.unet.config.in_channels == pipe.unet.config.out_channels == 4
    images = _scene_batch(2)
    with torch.no_grad():
        wide = base.vae.encode(images).latent_dist
        narrow = pipe.vae.encode(images).latent_dist
        assert torch.allclose(narrow.mean, torch.einsum("bchw,ck->bkhw", wide.mean, basis), atol=1e-4)
        assert narrow.std.max() < 1e-6  # sampling the latent returns its mean
        x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
        t = torch.tensor([100, 700])
        ids = base.tokenizer(["a red circle", ""], padding="max_length", max_length=base.tokenizer.model_max_length,
                             return_tensors="pt").input_ids
        context = base.text_encoder(ids).last_hidden_state
        out = pipe.unet(x, t, context).sample
        expected = base.unet(torch.einsum("bkhw,ck->bchw", x, basis), t, context).sample
        assert torch.allclose(out, torch.einsum("bchw,ck->bkhw", expected, basis), atol=1e-4)
    with pytest.raises(ValueError, match=r"basis must be \(8, k\)"):
        train_edits.narrow_pipeline(base, torch.eye(8))


def test_decoder_distillation_reduces_the_error_to_the_teacher():
    import torch

    base = shapes.load("text2image")
    base.vae.requires_grad_(False)
    basis = train_edits.latent_basis(base.vae, 4, calib=64)[0]
    pipe = train_edits.narrow_pipeline(base, basis)
    with torch.no_grad():
        latents = pipe.vae.encode(_scene_batch(8, seed=3)).latent_dist.mean
    losses = train_edits.distill_decoder(pipe.vae, base.vae, basis, latents, steps=26, batch=8)
    assert losses[-1] < 0.7 * losses[0]


def test_inpainting_trains_on_a_narrowed_base_and_runs_in_the_diffusers_pipeline(tmp_path):
    from diffusers import StableDiffusionInpaintPipeline

    from diffexplain.models.edit_adapter import EditAdapter
    from diffexplain.models.loading import load_pipeline

    run = tmp_path / "run"
    train_edits.main(["narrow", "--run-dir", str(run), "--calib", "32", "--distill-steps", "1"])
    record = json.loads((run / "base4" / "training.json").read_text())
    assert record["channels"] == 4 and 0.5 < record["second_moment_share"] <= 1
    train_edits.main(["inpaint", "--run-dir", str(run), "--base", str(run / "base4"), "--steps", "1", "--batch", "2",
                      "--pool", "8", "--refresh", "2"])
    dest = tmp_path / "weights"
    train_edits.main(["export", "--kind", "inpaint", "--run-dir", str(run), "--base", str(run / "base4"),
                      "--dest", str(dest)])
    pipe = load_pipeline(str(dest))
    assert isinstance(pipe, StableDiffusionInpaintPipeline) and pipe.unet.config.in_channels == 9
    assert json.loads((dest / "training.json").read_text())["narrowed_base"] == record
    mask = np.zeros((64, 64), bool)
    mask[8:40, 20:52] = True
    source = np.full((64, 64, 3), 255, np.uint8)
    adapter = EditAdapter(pipe, image=source, mask=mask, num_inference_steps=2)
    image = adapter.generate(["a red circle"], [0])[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


def test_interpolate_mixes_float_weights_and_leaves_integer_buffers():
    import torch

    gen = torch.Generator().manual_seed(0)
    mine, theirs = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for module in (mine, theirs):
        module.weight.data = torch.randn(2, 3, generator=gen)
        module.register_buffer("count", torch.tensor([7]))
    theirs.count.fill_(100)
    expected = 0.25 * mine.weight.detach().clone() + 0.75 * theirs.weight.detach()
    before = theirs.weight.detach().clone()
    train_edits.interpolate_(mine, theirs, 0.25)
    assert torch.allclose(mine.weight, expected)
    assert mine.count.item() == 7 and torch.equal(theirs.weight, before)
    train_edits.interpolate_(mine, theirs, 0.0)
    assert torch.equal(mine.weight, theirs.weight)
    with pytest.raises(ValueError, match="mix must be in"):
        train_edits.interpolate_(mine, theirs, 1.5)


def test_average_with_is_for_export_only_and_mix_is_range_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_edits.main(["pix2pix", "--run-dir", str(tmp_path / "a"), "--average-with", str(tmp_path)])
    assert "--average-with applies to export only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_edits.main(["export", "--kind", "pix2pix", "--run-dir", str(tmp_path / "b"), "--average-with",
                          str(tmp_path), "--mix", "2"])
    assert "--mix must be in [0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_reference_object_mask_is_the_crops_object():
    from diffexplain_shapes import COLOURS, Scene, ShapeObject
    from diffexplain_shapes.tasks import reference_crop, reference_object_mask

    scene = Scene(objects=(ShapeObject("blue", "square", "small", "left", 14.0, 30.0),
                           ShapeObject("red", "triangle", "big", "right", 48.0, 30.0)))
    for index in (0, 1):
        crop = reference_crop(scene, index)
        mask = reference_object_mask(scene, index)
        assert mask.shape == crop.shape[:2] and mask.dtype == bool
        colour = np.array(COLOURS[scene.objects[index].colour])
        assert (crop[mask] == colour).all(axis=-1).mean() > 0.95  # the object's pixels
        assert not (crop[~mask] == colour).all(axis=-1).any()  # nothing of it outside
