"""diffexplain's benchmarks on the shapes world, one module each, run from the repository root:

    python -m benchmarks.shapes_fidelity   --parts accuracy,speed
    python -m benchmarks.attention_maps
    python -m benchmarks.word_attribution  --parts accuracy,compare,ablation,overhead
    python -m benchmarks.edits             --parts pix2pix,insertion,inpainting

Each part writes its current result to ``benchmarks/results/<benchmark>_<part>.{json,md}``; a run
with ``--name`` (an ad-hoc variant) writes to ``runs/benchmarks/`` instead, which git ignores.
The commands behind every current result: ``docs/benchmarks.md``.
"""
