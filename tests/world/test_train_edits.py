import json

import numpy as np
import pytest

from diffexplain.models import shapes
from diffexplain.world import train_edits


@pytest.mark.parametrize("kind", ["pix2pix", "paint_by_example"])
def test_edit_training_smoke_and_export(tmp_path, kind):
    """Two optimisation steps from the shipped text2image model, then an exported pipeline that loads and runs."""
    run = tmp_path / "run"
    train_edits.main([kind, "--run-dir", str(run), "--steps", "2", "--batch", "2", "--pool", "8", "--refresh", "2",
                      "--word-drop", "0.5"])
    dest = tmp_path / "weights"
    train_edits.main(["export", "--kind", kind, "--run-dir", str(run), "--dest", str(dest)])
    from diffexplain.models.edit_adapter import EditAdapter, PaintByExampleAdapter
    from diffexplain.models.loading import load_pipeline

    pipe = load_pipeline(str(dest))
    base = json.loads((shapes.weights_path("text2image") / "scheduler" / "scheduler_config.json").read_text())
    assert pipe.scheduler.config.prediction_type == base["prediction_type"]  # trained on the base's target
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


def test_widened_unet_starts_as_the_base_denoiser(shapes_pipe):
    import torch

    wide = train_edits.widen_conv_in(shapes_pipe.unet, 16)
    latents = torch.randn(1, 8, 16, 16)
    context = torch.randn(1, 32, 128)
    base = shapes_pipe.unet(latents, 500, context).sample
    extended = wide(torch.cat([latents, torch.randn(1, 8, 16, 16)], dim=1), 500, context).sample
    torch.testing.assert_close(base, extended)


def test_extended_text_encoder_keeps_shared_words():
    from diffexplain.world.edits import instruction_vocabulary

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
    with pytest.raises(ValueError, match="needs a VAE with 4 latent channels"):
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
