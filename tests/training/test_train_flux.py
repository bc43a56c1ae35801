"""The shapes Flux training script: trains, resumes exactly, packs (tied T5 embeddings included) and
exports a folder plain ``FluxPipeline.from_pretrained`` loads and diffexplain runs at 64 px."""

import json

import torch

from training import train_flux


def test_flux_training_smoke_resume_pack_and_export(tmp_path):
    run = tmp_path / "run"
    common = ["flux", "--run-dir", str(run), "--batch", "4", "--pool", "256", "--width", "64", "--double", "1",
              "--single", "1", "--warmup", "2", "--anneal", "2", "--save-every", "2"]
    train_flux.main([*common, "--steps", "2"])
    first = torch.load(run / "flux.ckpt", weights_only=True)
    train_flux.main([*common, "--steps", "4"])  # resumes at step 2
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "flux_done"]
    assert steps == [2, 4] and first["step"] == 2
    train_flux.main(["pack", "--run-dir", str(run), "--dest", str(tmp_path / "packed")])
    assert (tmp_path / "packed" / "resume.safetensors").is_file()
    dest = tmp_path / "export"
    train_flux.main(["export", "--run-dir", str(run), "--dest", str(dest)])
    from diffusers import FluxPipeline

    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    assert isinstance(FluxPipeline.from_pretrained(dest, local_files_only=True), FluxPipeline)
    adapter = TextToImageAdapter(load_pipeline(str(dest)), num_inference_steps=2)
    assert (adapter.height, adapter.width) == (64, 64) and adapter.pipeline_kwargs["max_sequence_length"] == 32
    assert adapter.generate(["a red circle"], [0]).shape == (1, 64, 64, 3)
    record = json.loads((dest / "training.json").read_text())
    assert record["steps"] == 4 and record["architecture"] == {"width": 64, "double": 1, "single": 1}
