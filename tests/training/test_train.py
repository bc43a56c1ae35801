import json

import pytest
import torch

from diffexplain.models.adapter import TextToImageAdapter
from training import train


def _log(run_dir, stage):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()
            if json.loads(line)["stage"] == stage]


def test_training_loop_smoke_resume_pack_and_export(tmp_path):
    """20 optimisation steps in all: every stage runs, resumes, and exports a loadable pipeline."""
    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--save-every", "2"]
    train.main(["vae", *common, "--steps", "4", "--batch", "4", "--calib", "16"])
    assert (run / "vae" / "config.json").exists()
    assert json.loads((run / "vae" / "config.json").read_text())["scaling_factor"] > 0
    encoder_before = {k: v.clone() for k, v in torch.load(run / "vae.ckpt", weights_only=True)["model"].items()
                      if k.startswith("encoder.")}
    train.main(["vae-decoder", *common, "--steps", "2", "--batch", "4", "--calib", "16"])
    train.main(["vae-decoder", *common, "--steps", "3", "--batch", "4", "--calib", "16"])  # resumes at 2
    assert [r["step"] for r in _log(run, "decoder_done")] == [2, 3]
    from diffusers import AutoencoderKL

    tuned = AutoencoderKL.from_pretrained(run / "vae").state_dict()
    assert all(torch.equal(tuned[k], v) for k, v in encoder_before.items())  # the encoder never moves
    train.main(["vae-center", "--run-dir", str(run), "--calib", "16"])
    centred = _log(run, "vae_center")[-1]
    assert centred["reconstruction_drift"] < 1e-3
    assert max(abs(v) for v in centred["residual_mean"]) < 1e-4  # exact on the calibration scenes
    unet = ["unet", *common, "--batch", "4", "--pool", "64", "--warmup", "2", "--anneal", "2"]
    train.main([*unet, "--steps", "3"])
    train.main([*unet, "--steps", "6", "--ground", "0.01"])  # resumes at step 3 from unet.ckpt
    steps = [r["step"] for r in _log(run, "unet")]
    assert steps == [3, 6]
    assert [r["step"] for r in _log(run, "unet_done")] == [3, 6]

    packed = tmp_path / "packed"
    train.main(["pack", "--run-dir", str(run), "--dest", str(packed)])
    fresh = tmp_path / "fresh"
    fresh_args = ["unet", "--run-dir", str(fresh), "--init-from", str(packed), "--save-every", "2",
                  "--batch", "4", "--pool", "64", "--warmup", "2", "--anneal", "2"]
    train.main([*fresh_args, "--steps", "10", "--prediction", "v_prediction"])  # epsilon -> v fine-tune
    assert [r["step"] for r in _log(fresh, "unet_done")] == [3, 6, 10]  # the packed run's history comes along
    commands = (fresh / "commands.txt").read_text().splitlines()
    assert commands[0].split()[3] == "vae" and "--init-from" in commands[-1]
    with pytest.raises(ValueError, match="v_prediction"):  # resuming must not switch the target
        train.main([*fresh_args, "--steps", "12"])

    dest = tmp_path / "weights"
    train.main(["export", "--run-dir", str(fresh), "--dest", str(dest)])
    record = json.loads((dest / "training.json").read_text())
    assert record["unet_steps"] == 10 and record["commands"] and record["prediction"] == "v_prediction"
    scheduler = json.loads((dest / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["prediction_type"], scheduler["timestep_spacing"]) == ("v_prediction", "trailing")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(dest, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = TextToImageAdapter(pipe, num_inference_steps=2, guidance_scale=2.0).generate(["a red circle"], [0])[0]
    assert image.shape == (64, 64, 3)
    assert image.std() > 0
    assert torch.get_num_threads() >= 1


def test_vae_colour_stage_ties_channels_to_pooled_rgb_and_resumes(tmp_path):
    """The colour tie falls under training, the stage resumes, and it logs the colour-pair squeeze."""
    base = tmp_path / "base"
    train.main(["vae", "--run-dir", str(base), "--steps", "2", "--batch", "4", "--calib", "16"])
    run = tmp_path / "colour"
    common = ["vae-colour", "--run-dir", str(run), "--init-vae", str(base / "vae"), "--batch", "8", "--calib", "16",
              "--lr", "2e-3", "--colour-weight", "10", "--save-every", "1"]
    train.main([*common, "--steps", "1"])
    train.main([*common, "--steps", "20"])  # resumes at step 1
    ties = {r["step"]: r["tie"] for r in _log(run, "vae_colour")}
    assert sorted(ties) == [1, 20]
    assert ties[20] < 0.5 * ties[1]
    done = _log(run, "vae_colour_done")
    assert [r["step"] for r in done] == [1, 20]
    pairs = done[-1]["colour_pairs"]
    assert set(pairs) == {"latent", "pixel"} and pairs["pixel"]["red/orange"] > 0
    assert json.loads((run / "vae" / "config.json").read_text())["scaling_factor"] > 0


def test_reconstruction_stats_draw_distinct_scenes(monkeypatch):
    """Calibration (scaling factor, PSNR) is measured on args.calib different scenes, not one repeated."""
    import argparse

    from diffusers import AutoencoderKL

    from diffexplain_shapes import pipelines as shapes

    seen = []
    images = train._images
    monkeypatch.setattr(train, "_images", lambda scenes: seen.extend(s.caption for s in scenes) or images(scenes))
    std, psnr = train._reconstruction_stats(AutoencoderKL(**shapes.vae_config()), argparse.Namespace(seed=0, calib=16))
    assert len(seen) == 16 and len(set(seen)) > 8
    assert std > 0 and psnr == psnr


def test_vae_colour_needs_init_vae(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        train.main(["vae-colour", "--run-dir", str(tmp_path)])
    assert "--init-vae" in capsys.readouterr().err


def test_dropout_shares_outside_0_1_are_refused_before_any_work(tmp_path, capsys):
    import pytest

    for flag, value in (("--word-drop", "1.5"), ("--filler-drop", "-0.1")):
        with pytest.raises(SystemExit):
            train.main(["unet", "--run-dir", str(tmp_path / "run"), flag, value])
        assert f"{flag} must be in [0, 1], got {float(value)}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_v_loss_is_an_x0_loss_with_weight_floored_at_one():
    """v-MSE weighted by min(SNR+1, g)/(SNR+1) equals min(SNR+1, g) times the x0 error."""
    gen = torch.Generator().manual_seed(0)
    x0, noise, pred = (torch.randn(3, 2, 4, 4, generator=gen) for _ in range(3))
    abar = torch.tensor([0.006, 0.5, 0.99]).view(-1, 1, 1, 1)  # SNR 0.006, 1, 99
    noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    x0_hat = abar.sqrt() * noisy - (1 - abar).sqrt() * pred  # how diffusers reads a v prediction
    weight = torch.tensor([1.006, 2.0, 5.0])  # min(SNR + 1, 5)
    expected = (weight * (x0_hat - x0).pow(2).mean(dim=(1, 2, 3))).mean()
    assert torch.allclose(train.v_loss(pred, x0, noise, abar, 5.0), expected, rtol=1e-4)
    target = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    assert train.v_loss(target, x0, noise, abar, 5.0).item() < 1e-12


def test_scheduler_config_rejects_unknown_prediction_type():
    from diffexplain_shapes import pipelines as shapes

    with pytest.raises(ValueError, match="sample"):
        shapes.scheduler_config("sample")


def test_drop_words_keeps_order_and_covers_every_coalition_size():
    import numpy as np

    caption = "a big red circle on the left"
    words = caption.split()
    rng = np.random.default_rng(0)
    sizes = np.zeros(len(words) + 1, dtype=int)
    for _ in range(4000):
        kept = train.drop_words(caption, rng).split()
        positions = [words.index(w) if w != "the" else 5 for w in kept]  # every word but none repeats
        assert positions == sorted(positions)
        sizes[len(kept)] += 1
    # keep-share uniform on [0, 1) gives each of the d + 1 sizes probability 1 / (d + 1)
    assert np.all(np.abs(sizes / 4000 - 1 / (len(words) + 1)) < 0.03), sizes


def test_word_drop_batches_are_seeded_and_leave_the_default_stream_alone():
    class Tok:
        model_max_length = 8

        def __call__(self, captions, **kwargs):
            ids = torch.tensor([[len(c.split())] * 8 for c in captions])
            return type("T", (), {"input_ids": ids})()

    pool = train._LatentPool.__new__(train._LatentPool)
    pool.seed, pool.tokenizer = 0, Tok()
    pool.captions = [f"a red circle number {i}" for i in range(32)]
    pool.latents = torch.zeros(32, 1)
    pool.masks = torch.zeros(32, 3, 2, 2)
    pool.token_object = torch.zeros(32, 8, dtype=torch.int8)
    plain = pool.batch(3, 16, 0.0)
    dropped = pool.batch(3, 16, 0.0, p_word_drop=1.0)
    again = pool.batch(3, 16, 0.0, p_word_drop=1.0)
    assert torch.equal(plain[1], pool.batch(3, 16, 0.0)[1])
    assert torch.equal(dropped[1], again[1])
    assert (dropped[1][:, 0] < 5).any()  # some words gone
    changed = dropped[1][:, 0] != plain[1][:, 0]
    assert (dropped[3][changed] == -1).all() and (plain[3] == 0).all()


def test_filler_drop_keeps_content_words_and_moves_their_grounding_targets(tmp_path):
    """Captions lose only filler words, and each kept word keeps its object in the grounding targets."""
    import numpy as np

    from diffexplain_shapes import pipelines as shapes
    from diffexplain_shapes.scene import sample_scene
    from training.grounding import token_objects

    tokenizer = shapes.build_tokenizer(tmp_path / "tok")
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(24)]
    pool = train._LatentPool.__new__(train._LatentPool)
    pool.seed, pool.tokenizer = 0, tokenizer
    pool.captions = [s.caption for s in scenes]
    pool.fillers = [[w.role == "filler" for w in s.words] for s in scenes]
    pool.latents = torch.zeros(24, 1)
    pool.masks = torch.zeros(24, 3, 2, 2)
    pool.token_object = torch.stack([torch.from_numpy(token_objects(s, tokenizer, tokenizer.model_max_length))
                                     for s in scenes])
    plain = pool.batch(5, 24, 0.0)
    dropped = pool.batch(5, 24, 0.0, p_filler_drop=1.0)
    assert torch.equal(plain[1], pool.batch(5, 24, 0.0)[1])  # the default stream is untouched
    idx = np.random.default_rng([0, 5, 5]).choice(24, size=24, replace=False)  # the batch's own draw
    shortened = 0
    for row, i in enumerate(idx):
        words = scenes[i].words
        text = tokenizer.decode(dropped[1][row], skip_special_tokens=True).split()
        content = [w.text for w in words if w.role != "filler"]
        assert [t for t in text if t in content] == content
        shortened += len(text) < len(words)
        grounded = {(w.text, w.object_index) for w in words if w.object_index is not None and w.role != "position"}
        for position, token in enumerate(text, start=1):
            obj = int(dropped[3][row, position])
            assert obj == -1 or (token, obj) in grounded
        assert (dropped[3][row] >= 0).sum() == (plain[3][row] >= 0).sum()  # no target lost or gained
    assert shortened > 12


def test_install_vae_copies_a_decoder_finetune_and_refuses_another_encoder(tmp_path):
    """``install-vae`` puts a decoder fine-tune into a pipeline folder (float16, record added) only
    when that folder's encoder is the one the fine-tune kept."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    from diffexplain_shapes import pipelines as shapes

    torch.manual_seed(0)
    base = AutoencoderKL(**shapes.vae_config())
    dest, run = tmp_path / "pipe", tmp_path / "run"
    base.save_pretrained(dest / "vae")
    (dest / "training.json").write_text(json.dumps({"pipeline": "text2image"}))
    base.save_pretrained(run / "vae")
    train.main(["vae-decoder", "--run-dir", str(run), "--steps", "2", "--batch", "4", "--calib", "16",
                "--p-background", "1.0", "--lr", "1e-2"])
    train.main(["install-vae", "--run-dir", str(run), "--dest", str(dest)])
    weights = load_file(dest / "vae" / "diffusion_pytorch_model.safetensors")
    reference = base.state_dict()
    assert all(w.dtype == torch.float16 for w in weights.values())
    assert all(torch.equal(weights[k], reference[k].half()) for k in reference if k.startswith("encoder."))
    assert any(not torch.equal(weights[k], reference[k].half()) for k in reference if k.startswith("decoder."))
    record = json.loads((dest / "training.json").read_text())
    assert record["pipeline"] == "text2image"
    assert record["vae_decoder_backgrounds"]["result"]["step"] == 2
    commands = record["vae_decoder_backgrounds"]["commands"]
    assert "--p-background" in commands[-2] and "install-vae" in commands[-1]

    other = tmp_path / "other"
    torch.manual_seed(1)
    AutoencoderKL(**shapes.vae_config()).save_pretrained(other / "vae")
    (other / "training.json").write_text("{}")
    with pytest.raises(ValueError, match="encoder differs"):
        train.main(["install-vae", "--run-dir", str(run), "--dest", str(other)])
    assert json.loads((other / "training.json").read_text()) == {}


def test_the_attribution_consistency_term_is_minus_imacs_of_the_guidance_difference():
    import numpy as np
    import torch

    from diffexplain.metrics import imacs
    from training.train_edits import attribution_consistency

    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    rng = np.random.default_rng(0)
    difference = torch.tensor(rng.normal(size=(2, 4, 8, 8)), dtype=torch.float32, requires_grad=True)
    loss = attribution_consistency(difference, mask)
    heat = difference.detach().abs().mean(1).numpy()
    expected = -np.mean([imacs(heat[b], mask[b, 0].numpy().astype(bool), 3.0) for b in range(2)])
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert difference.grad is not None and difference.grad.abs().sum() > 0
    inside = torch.zeros(1, 4, 8, 8)
    inside[:, :, 2:6, 2:6] = 1.0  # the reference's effect only inside the mask: the best score
    outside = 1.0 - inside
    assert attribution_consistency(inside, mask[:1]) < attribution_consistency(outside, mask[:1])
