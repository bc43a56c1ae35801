"""``Work``: one batch of generations, the unit executors run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .models.perturbations import DropWords, Perturbation


@dataclasses.dataclass(frozen=True)
class Work:
    """One batch of generations: coalitions of one prompt's words under one perturbation.

    Attributes:
        prompt: the prompt whose words the masks keep or drop.
        masks: bool (n, d) word masks, one per image.
        seeds: one seed per image.
        perturbation: how a mask becomes the pipeline's input (default ``DropWords``).
    """

    prompt: str
    masks: np.ndarray
    seeds: tuple[int, ...]
    perturbation: Perturbation = dataclasses.field(default_factory=DropWords)

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks, dtype=bool)
        if masks.ndim != 2 or len(masks) != len(self.seeds):
            raise ValueError(f"masks must be (n, d) with one row per seed ({len(self.seeds)}), got {masks.shape}")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @classmethod
    def full(cls, prompt: str, seeds: Sequence[int]) -> Work:
        """The unperturbed prompt once per seed (warm-ups, time estimates)."""
        return cls(prompt, np.ones((len(seeds), len(prompt.split())), bool), tuple(seeds))

    def conditionings(self) -> list[str]:
        """Each image's exact conditioning (``Perturbation.conditioning``)."""
        return [self.perturbation.conditioning(self.prompt, mask) for mask in self.masks]
