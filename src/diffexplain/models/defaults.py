"""Sampler and attention defaults: one place, read from a pipeline's own files when it ships them.

A pipeline directory may hold ``diffexplain.json`` (the marker) next to its ``model_index.json``::

    {"name": "shapes/text2image",
     "sampler": {"num_inference_steps": 20, "guidance_scale": 1.5},
     "pipeline_args": {"max_sequence_length": 32},
     "attention": {"min_grid": 16, "tau": 0.05},
     "vocabulary": ["a", "red", ...]}

Every key is optional. The built-in shapes pipelines ship one, so a copied or moved folder keeps
its defaults; any other pipeline gets ``GENERIC``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

MARKER = "diffexplain.json"


@dataclasses.dataclass(frozen=True)
class PipelineDefaults:
    """Settings a pipeline is run and read with unless the caller overrides them.

    Attributes:
        name: what the marker calls the model ("" for a pipeline without one).
        num_inference_steps, guidance_scale: sampler settings.
        attention_min_grid: average cross-attention over layers whose map is at least this many
            latent pixels a side (1 = every layer, DAAM's choice).
        attention_tau: threshold on a min-max-normalised heatmap (0.4 = DAAM's).
        vocabulary: the only words the model knows, or None for an open vocabulary.
        height, width: the image size the model is run at (None: the pipeline's own; the shapes Flux
            model states 64, as FluxPipeline's default is 1024 px scaled by its VAE).
        pipeline_args: extra pipeline-call arguments the model is run with unless the caller sets
            them (the shapes Flux model: ``max_sequence_length=32``, the T5 window it was trained on).
    """

    name: str = ""
    num_inference_steps: int = 20
    guidance_scale: float = 7.5  # diffusers' Stable Diffusion default
    attention_min_grid: int = 1
    attention_tau: float = 0.4
    vocabulary: tuple[str, ...] | None = None
    pipeline_args: tuple[tuple[str, Any], ...] = ()
    height: int | None = None
    width: int | None = None

    def check_vocabulary(self, text: str, argument: str = "prompt") -> None:
        """Raise ValueError naming every word of ``text`` outside a closed vocabulary."""
        if self.vocabulary is None:
            return
        known = set(self.vocabulary)
        unknown = [word for word in text.lower().split() if word not in known]
        if unknown:
            raise ValueError(
                f"{argument} contains word(s) the model {self.name or ''} does not know: "
                f"{', '.join(repr(w) for w in unknown)}. Vocabulary: {' '.join(self.vocabulary)}")


GENERIC = PipelineDefaults()


def pipeline_directory(pipe: Any) -> Path | None:
    """The local folder ``pipe`` was loaded from, or None (built in memory, or a hub id)."""
    name_or_path = getattr(pipe, "name_or_path", None) or getattr(pipe, "config", {}).get("_name_or_path", None)
    if not name_or_path:
        return None
    path = Path(str(name_or_path))
    return path if path.is_dir() else None


def read_defaults(directory: Path | None, family: Any = None) -> PipelineDefaults:
    """The defaults of the pipeline saved in ``directory``: its marker's values over the family's
    sampler defaults (``family``: a ``families.Family``) over ``GENERIC``."""
    base = GENERIC if family is None else dataclasses.replace(
        GENERIC, num_inference_steps=family.num_inference_steps, guidance_scale=family.guidance_scale)
    if directory is None or not (Path(directory) / MARKER).is_file():
        return base
    data: dict[str, Any] = json.loads((Path(directory) / MARKER).read_text())
    sampler, attention = data.get("sampler", {}), data.get("attention", {})
    vocabulary = data.get("vocabulary")
    return PipelineDefaults(
        name=str(data.get("name", "")),
        num_inference_steps=int(sampler.get("num_inference_steps", base.num_inference_steps)),
        guidance_scale=float(sampler.get("guidance_scale", base.guidance_scale)),
        attention_min_grid=int(attention.get("min_grid", GENERIC.attention_min_grid)),
        attention_tau=float(attention.get("tau", GENERIC.attention_tau)),
        vocabulary=tuple(vocabulary) if vocabulary is not None else None,
        pipeline_args=tuple(sorted(dict(data.get("pipeline_args", {})).items())),
        height=int(sampler["height"]) if "height" in sampler else None,
        width=int(sampler["width"]) if "width" in sampler else None,
    )


def pipeline_defaults(pipe: Any, family: Any = None) -> PipelineDefaults:
    """``read_defaults`` for the folder ``pipe`` was loaded from (the family's or ``GENERIC`` if none)."""
    return read_defaults(pipeline_directory(pipe), family)
