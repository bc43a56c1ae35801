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


def ground_truth_prompts() -> list[GroundTruthPrompt]:
    """The ten prompts of Gupta & Kanoria ("Adapting Interpretability Techniques to Generative
    Image Diffusion Models") with their hand-assigned word importance, each row summing to 1.

    Users with Stable Diffusion can score any explainer on them with
    ``diffexplain.metrics.ranks_aligned`` and ``rmse_normalised`` (the paper: 64%, 0.22).
    """
    data = json.loads(resources.files(__package__).joinpath("gupta_kanoria_prompts.json").read_text())
    return [GroundTruthPrompt(p["prompt"], np.asarray(p["importance"], dtype=np.float64)) for p in data["prompts"]]
