"""``ExplainSettings``: everything that shapes an explanation's numbers, as one frozen value.

Validated once, when it is made; the API, the prompt game, audits and the command line pass it
whole (the command line builds its options, choices and help defaults from the same registries).
Live collaborators (the generation cache, an executor, a progress callback) are not settings:
they change where and how fast images are made, never the values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models.perturbations import DropWords, Perturbation, perturbation_from
from ..names import DEFAULT_EMBEDDER, DEFAULT_SIMILARITY, EMBEDDERS, SIMILARITIES
from .methods import DEFAULT_METHOD, METHODS
from .multifidelity import Fidelity, fidelity_from

if TYPE_CHECKING:  # torch-free at import: the command line reads these settings' defaults
    from ..embed.embedders import Embedder

REFERENCES = ("full", "source")
SAMPLED = ("permutation", "kernelshap", "lime", "smile")


@dataclasses.dataclass(frozen=True)
class ExplainSettings:
    """What an explanation is computed with.

    Attributes:
        method: the attribution method (``methods.METHODS``).
        budget: coalitions to evaluate, or None for the method's default (``methods.default_budget``).
        seeds: the image seeds every coalition is generated with (common random numbers); an int K
            means ``seed .. seed + K - 1``. Two seeds score words markedly better than one on the
            shapes world (the benchmarks' results say by how much).
        seed: the first image seed when ``seeds`` is a count.
        sampler_seed: seeds the explainer's own sampling (permutations, masks, bootstrap).
        embedder: an embedder name (``embed.EMBEDDERS``) or object.
        embedder_path: local model directory for "clip" / "dinov2".
        embedder_size: EfficientNet's input side when ``embedder`` is "efficientnet" by name.
        similarity: "neg_l2", "cosine" or "wasserstein" (1 - W1, as SMILE).
        perturbation: a ``Perturbation`` or its spec ("drop", "empty_embedding", "replace:TOKEN").
        reference: "full" (the unperturbed prompt's image) or "source" (an edit adapter's source).
        fidelity: "full", or a cheap version of the model ("auto", "steps=K", "size=S",
            "model=DIR"): multi-fidelity KernelSHAP (``multifidelity``); ``budget`` then counts
            full-generation equivalents (default 2d).
        tolerance: anytime explanations: a sampled method runs at growing budgets (KernelSHAP
            from 2d + 2 coalitions, then d more a round) and stops once every value's standard
            error, or the largest change of a value since the previous round, is below
            ``tolerance`` times the values' L1 norm (0.2: a fifth of the total attribution); a
            first round that sampled its coalitions never stops it; ``budget`` then caps the
            coalitions (default 64 d). None: a fixed budget.
    """

    method: str = DEFAULT_METHOD
    budget: int | None = None
    seeds: int | Sequence[int] = 2
    seed: int = 0
    sampler_seed: int = 0
    embedder: str | Embedder = DEFAULT_EMBEDDER
    embedder_path: str | None = None
    embedder_size: int | None = None
    similarity: str = DEFAULT_SIMILARITY
    perturbation: str | Perturbation = dataclasses.field(default_factory=DropWords)
    reference: str = "full"
    fidelity: str | Fidelity = "full"
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)}, got {self.method!r}")
        if self.budget is not None and (isinstance(self.budget, bool) or int(self.budget) < 1):
            raise ValueError(f"budget must be >= 1 (or None for the method's default), got {self.budget!r}")
        if isinstance(self.seeds, bool) or (isinstance(self.seeds, int) and self.seeds < 1):
            raise ValueError(f"seeds must be >= 1 (or a non-empty list), got {self.seeds!r}")
        seeds = tuple(range(int(self.seed), int(self.seed) + self.seeds)) if isinstance(self.seeds, int) \
            else tuple(int(s) for s in self.seeds)
        if not seeds:
            raise ValueError("seeds must not be empty")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if isinstance(self.embedder, str) and self.embedder not in EMBEDDERS:
            raise ValueError(f"embedder must be one of {EMBEDDERS}, got {self.embedder!r}")
        if self.embedder_size is not None and self.embedder != "efficientnet":
            raise ValueError(f"embedder_size applies to the 'efficientnet' embedder given by name, "
                             f"got {self.embedder!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        object.__setattr__(self, "perturbation", perturbation_from(self.perturbation))
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        fidelity = fidelity_from(self.fidelity)
        object.__setattr__(self, "fidelity", fidelity)
        if not fidelity.is_full and self.method != "kernelshap":
            raise ValueError(f"fidelity {fidelity.spec!r} corrects exact Shapley of the cheap model with KernelSHAP "
                             f"on the full one: use method 'kernelshap', not {self.method!r}")
        if self.tolerance is not None:
            if isinstance(self.tolerance, bool) or not float(self.tolerance) > 0:
                raise ValueError(f"tolerance must be > 0 (a fraction of the values' L1 norm), got {self.tolerance!r}")
            if self.method not in SAMPLED or not fidelity.is_full:
                raise ValueError(f"tolerance applies to the sampled methods {SAMPLED} at full fidelity, "
                                 f"not {self.method!r} with fidelity {fidelity.spec!r}")

    @property
    def image_seeds(self) -> tuple[int, ...]:
        """The image seeds, always as a tuple."""
        return tuple(self.seeds)  # type: ignore[arg-type]

    @property
    def perturbation_spec(self) -> str:
        """The perturbation as settings and the command line write it."""
        return perturbation_from(self.perturbation).spec

    @property
    def embedder_name(self) -> str:
        return self.embedder if isinstance(self.embedder, str) else self.embedder.name

    def replace(self, **changes: Any) -> ExplainSettings:
        """A copy with ``changes`` (validated again); None values are ignored."""
        changes = {key: value for key, value in changes.items() if value is not None}
        if "seeds" not in changes and "seed" in changes:
            changes["seeds"] = len(self.image_seeds)
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, stored with each explanation."""
        return dict(method=self.method, seeds=list(self.image_seeds), sampler_seed=self.sampler_seed,
                    embedder=self.embedder_name, similarity=self.similarity, perturbation=self.perturbation_spec,
                    reference=self.reference, fidelity=fidelity_from(self.fidelity).spec, tolerance=self.tolerance)
