"""Datasets shipped with diffexplain."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import numpy as np


@dataclasses.dataclass(frozen=True)
class GroundTruthPrompt:
    """A prompt with a ground-truth importance per whitespace word (summing to 1)."""

    prompt: str
    importance: np.ndarray

    @property
    def words(self) -> list[str]:
        return self.prompt.split()


def seed002_prompts() -> list[GroundTruthPrompt]:
    """Seed 002's ten prompts with their hand-assigned word importance (REFERENCE.md section 6).

    Users with Stable Diffusion can score any explainer on them with
    ``diffexplain.metrics.ranks_aligned`` and ``rmse_normalised`` (the paper: 64%, 0.22).
    """
    data = json.loads(resources.files(__package__).joinpath("seed002_prompts.json").read_text())
    return [GroundTruthPrompt(p["prompt"], np.asarray(p["importance"], dtype=np.float64)) for p in data["prompts"]]
