"""Small image helpers for reports."""

from __future__ import annotations

from typing import Sequence

from PIL import Image


def image_grid(images: Sequence[Image.Image], columns: int, scale: int = 1, pad: int = 2) -> Image.Image:
    """Tile equally sized images into a grid, each upscaled by ``scale`` (nearest neighbour)."""
    if not images:
        raise ValueError("images must not be empty")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    width, height = images[0].width * scale, images[0].height * scale
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (width + pad) + pad, rows * (height + pad) + pad), (255, 255, 255))
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        tile = image.convert("RGB").resize((width, height), Image.NEAREST)
        grid.paste(tile, (pad + c * (width + pad), pad + r * (height + pad)))
    return grid
