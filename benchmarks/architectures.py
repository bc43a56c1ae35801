"""Recording attention on an MMDiT: memory against prompt length.

Part ``memory``: one denoising step of an SD3-shaped transformer (SD3-medium's 24 heads of 64,
two joint blocks, random weights) on a 64x64 latent (patch 2: 1,024 image tokens), with a
context of T text tokens, T in 77, 154, 308, 616 (SD3's T5 window is 256 after 77 CLIP tokens).
Each measurement runs in a fresh process: one warm-up step, then the peak RSS of one step
without and one with an ``AttentionRecorder``. The recorder reads the image -> text block of the
joint softmax in query blocks, so its extra memory should grow linearly with T (its outputs are
N x T per head), never with N x N.

The supported-models matrix itself is run by ``tests/test_conformance.py``.

    python -m benchmarks.architectures [--parts memory]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks._common import machine, parts_and_name, write

PARTS = ("memory",)
TEXT_LENGTHS = (77, 154, 308, 616)
HEADS, HEAD_DIM, LATENT, PATCH, LAYERS = 24, 64, 64, 2, 2


def _one(text_len: int, record: str) -> dict:
    """In this process: the peak-RSS increase (MiB) of one transformer step; ``record``: "no",
    "all" (every context position) or "words" (16 positions, as ``record_prompt`` keeps a prompt's words)."""
    import torch
    from diffusers import SD3Transformer2DModel

    from benchmarks._common import peak_rss_mib, reset_peak_rss
    from diffexplain.attention import AttentionRecorder

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = SD3Transformer2DModel(sample_size=LATENT, patch_size=PATCH, in_channels=16, out_channels=16,
                                  num_layers=LAYERS, attention_head_dim=HEAD_DIM, num_attention_heads=HEADS,
                                  joint_attention_dim=256, caption_projection_dim=HEADS * HEAD_DIM,
                                  pooled_projection_dim=64, pos_embed_max_size=LATENT).eval()
    inputs = dict(hidden_states=torch.randn(1, 16, LATENT, LATENT), timestep=torch.tensor([500.0]),
                  encoder_hidden_states=torch.randn(1, text_len, 256), pooled_projections=torch.randn(1, 64))
    with torch.no_grad():
        model(**inputs)  # warm-up: weights and the allocator's arenas in place
        reset_peak_rss()
        before = peak_rss_mib()
        if record != "no":
            tokens = None if record == "all" else (0, 16)
            with AttentionRecorder(model, batch_layout="none", tokens=tokens) as recorder:
                model(**inputs)
            stored = sum(acc.sums.numel() * 4 for acc in recorder.accumulators.values()) / 2 ** 20
        else:
            model(**inputs)
            stored = 0.0
        peak = peak_rss_mib()
    return dict(text_len=text_len, record=record, step_mib=peak - before, stored_mib=stored)


def memory() -> dict:
    rows = []
    for text_len in TEXT_LENGTHS:
        for record in ("no", "all", "words"):
            code = ("import json; from benchmarks.architectures import _one; "
                    f"print(json.dumps(_one({text_len}, {record!r})))")
            # a fixed mmap threshold: every large tensor is its own mapping, returned to the system when
            # freed, so peak RSS follows the live tensors instead of the allocator's reused arenas
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    by = {(r["text_len"], r["record"]): r for r in rows}
    table = []
    for text_len in TEXT_LENGTHS:
        plain, every, words = (by[(text_len, mode)] for mode in ("no", "all", "words"))
        table.append(dict(text_len=text_len, plain_mib=plain["step_mib"], all_mib=every["step_mib"],
                          extra_mib=every["step_mib"] - plain["step_mib"], stored_mib=every["stored_mib"],
                          words_extra_mib=words["step_mib"] - plain["step_mib"], words_stored_mib=words["stored_mib"]))
    n = (LATENT // PATCH) ** 2
    full_matrix_mib = HEADS * n * n * 4 / 2 ** 20  # one layer's image x image probabilities, float32
    return dict(rows=table, image_tokens=n, heads=HEADS, layers=LAYERS,
                full_image_matrix_mib_per_layer=full_matrix_mib, machine=machine())


def memory_table(result: dict) -> str:
    lines = [
        "# MMDiT attention recording: memory against prompt length", "",
        f"One step of an SD3-shaped transformer ({result['heads']} heads of {HEAD_DIM}, {result['layers']} joint "
        f"blocks, random weights), 64x64 latent, patch 2: {result['image_tokens']} image tokens. Peak-RSS increase "
        "of the step in a fresh process after a warm-up step (glibc's mmap threshold fixed at 64 KiB, so "
        "freed tensors leave RSS); 'stored' = the recorder's float32 running sums "
        "(5 time groups x heads x image tokens x kept text tokens, per layer). 'all' keeps every context "
        "position, 'words' 16 (what `record_prompt` keeps: the prompt's words). One layer's image x image "
        f"probabilities, never formed, would be {result['full_image_matrix_mib_per_layer']:.0f} MiB.", "",
        "| text tokens | step (MiB) | extra, all (MiB) | stored, all (MiB) | extra per text token (KiB) "
        "| extra, words (MiB) | stored, words (MiB) |",
        "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['text_len']} | {row['plain_mib']:.1f} | {row['extra_mib']:.1f} | {row['stored_mib']:.1f} "
                     f"| {row['extra_mib'] * 1024 / row['text_len']:.0f} | {row['words_extra_mib']:.1f} "
                     f"| {row['words_stored_mib']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parts, name = parts_and_name(__doc__.splitlines()[0], PARTS, argv)
    if "memory" in parts:
        result = memory()
        write(name or "architectures_memory", result, memory_table(result), current=name is None)


if __name__ == "__main__":
    main()
