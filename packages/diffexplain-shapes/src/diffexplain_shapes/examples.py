"""Write the example inputs the README's command lines use: ``python -m diffexplain_shapes.examples DIR``.

``scene.png`` (a held-out scene), ``box.png`` (the box around its first object: an inpainting
mask), ``crop.png`` (that object alone: a Paint-by-Example reference) and ``prompts.txt`` (an audit
file with two groups).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .scene import sample_scene
from .tasks import box_mask, reference_crop

PROMPTS = """colour\ta big red circle on the left
colour\ta big blue circle on the left
shape\ta small green square at the top
shape\ta small green triangle at the top
"""


def write_examples(folder: str | Path, seed: int = 1) -> list[Path]:
    """Write the four files into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = sample_scene(np.random.default_rng(seed), split="heldout")
    paths = [folder / name for name in ("scene.png", "box.png", "crop.png", "prompts.txt")]
    Image.fromarray(scene.render()).save(paths[0])
    Image.fromarray((box_mask(scene, 0) * 255).astype(np.uint8)).save(paths[1])
    Image.fromarray(reference_crop(scene, 0)).save(paths[2])
    paths[3].write_text(PROMPTS)
    return paths


if __name__ == "__main__":
    for path in write_examples(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(path)
