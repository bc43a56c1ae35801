"""Perturbations: how a coalition of a prompt's words becomes the pipeline's input.

A perturbation is an object (as shap's maskers are): given an adapter, a prompt and boolean word
masks (n, d) it generates the coalitions' images, and it names each coalition's conditioning
exactly (the text that keys the generation cache). Three ship:

- ``DropWords``: the kept words in their order; the text sent is exactly that.
- ``EmptyEmbedding``: every text encoder's outputs at a dropped word's token positions replaced by
  its outputs for the empty prompt at the same positions (positions stay put); pooled embeddings
  (SDXL, SD3, Flux) are the kept words' text's, as under ``DropWords``. The encodings come from
  the pipeline's own ``encode_prompt`` through the family (``families.Family.encode``).
- ``ReplaceWords(token)``: each dropped word replaced by a neutral token (positions move only as
  the token's length differs from the word's).

A new perturbation is one class here with ``check``, ``conditioning`` and ``generate``, and one
entry in ``PERTURBATIONS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np


def _texts(prompt: str, masks: np.ndarray, filler: str | None = None) -> list[str]:
    words = prompt.split()
    if filler is None:
        return [" ".join(w for w, keep in zip(words, mask) if keep) for mask in np.asarray(masks, dtype=bool)]
    return [" ".join(w if keep else filler for w, keep in zip(words, mask)) for mask in np.asarray(masks, dtype=bool)]


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Base of the perturbations: a frozen value (its ``spec`` names it in settings and on the CLI)."""

    name: ClassVar[str] = ""

    @property
    def spec(self) -> str:
        """How settings and the command line write it ("drop", "replace:thing")."""
        return self.name

    def check(self, adapter: Any, prompt: str) -> None:
        """Raise ValueError where the perturbation is not defined for this adapter and prompt."""

    def conditioning(self, prompt: str, mask: np.ndarray) -> str:
        """The exact conditioning of one coalition, as the generation cache records it."""
        raise NotImplementedError

    def generate(self, adapter: Any, prompt: str, masks: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """The images of coalitions ``masks`` (n, d) with one seed each: uint8 (n, H, W, 3)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class DropWords(Perturbation):
    """Remove the words a coalition leaves out; the rest are sent as text, in their order."""

    name: ClassVar[str] = "drop"

    def conditioning(self, prompt: str, mask: np.ndarray) -> str:
        return _texts(prompt, np.asarray(mask)[None])[0]

    def generate(self, adapter: Any, prompt: str, masks: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        return adapter.generate(_texts(prompt, masks), list(seeds))


@dataclasses.dataclass(frozen=True)
class ReplaceWords(Perturbation):
    """Replace each word a coalition leaves out by ``token`` (a neutral word such as "thing")."""

    token: str = "thing"
    name: ClassVar[str] = "replace"

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or len(self.token.split()) != 1:
            raise ValueError(f"the replacement token must be one word, got {self.token!r}")

    @property
    def spec(self) -> str:
        return f"replace:{self.token}"

    def check(self, adapter: Any, prompt: str) -> None:
        adapter.words(self.token)  # a closed vocabulary must know it

    def conditioning(self, prompt: str, mask: np.ndarray) -> str:
        return _texts(prompt, np.asarray(mask)[None], self.token)[0]

    def generate(self, adapter: Any, prompt: str, masks: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        return adapter.generate(_texts(prompt, masks, self.token), list(seeds))


@dataclasses.dataclass(frozen=True)
class EmptyEmbedding(Perturbation):
    """Swap a dropped word's encoder outputs for the empty prompt's at the same positions."""

    name: ClassVar[str] = "empty_embedding"

    def check(self, adapter: Any, prompt: str) -> None:
        given = [k for k in ("negative_prompt", "negative_prompt_2", "negative_prompt_3")
                 if adapter.pipeline_kwargs.get(k)]
        if given:  # the negative encodings here are the empty prompt's: a user's negative prompt would be lost
            raise ValueError(f"perturbation='empty_embedding' does not take {given[0]} (its negative encoding is "
                             "the empty prompt's); use perturbation='drop' with a negative prompt")
        adapter.readings(prompt)  # refuses a prompt whose words cannot be located
        adapter.family.check_empty_embedding(adapter, prompt)

    def conditioning(self, prompt: str, mask: np.ndarray) -> str:
        bits = "".join("1" if keep else "0" for keep in np.asarray(mask, dtype=bool))
        return f"empty_embedding:{prompt}|{bits}"

    def generate(self, adapter: Any, prompt: str, masks: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool)
        if len(masks) != len(seeds):
            raise ValueError(f"masks and seeds must have the same length, got {len(masks)} and {len(seeds)}")
        texts = _texts(prompt, masks)
        return adapter.run_batches(list(seeds), lambda rows: masked(adapter, prompt, texts[rows], masks[rows]))


PERTURBATIONS: dict[str, type[Perturbation]] = {p.name: p for p in (DropWords, EmptyEmbedding, ReplaceWords)}


def perturbation_from(spec: str | Perturbation) -> Perturbation:
    """A perturbation from its spec: "drop", "empty_embedding" or "replace:TOKEN" (or the object itself).

    Raises:
        ValueError: naming the spec and the choices.
    """
    if isinstance(spec, Perturbation):
        return spec
    name, colon, argument = str(spec).partition(":")
    if name not in PERTURBATIONS or (colon and name != "replace") or (name == "replace" and not argument):
        raise ValueError(f"perturbation must be one of 'drop', 'empty_embedding', 'replace:TOKEN', got {spec!r}")
    return ReplaceWords(argument) if name == "replace" else PERTURBATIONS[name]()


def word_positions(adapter: Any, prompt: str) -> list[list[tuple[int, int]]]:
    """For each word, its [start, end) positions in the denoiser's context: one pair per context
    segment that holds it (a segment that cut the word off has none, and encoders sharing
    positions, SDXL's and SD3's two CLIPs, count once)."""
    positions: list[list[tuple[int, int]]] = [[] for _ in prompt.split()]
    for reading in adapter.readings(prompt):
        if reading.offset is None:  # pooled only: no positions
            continue
        for word, span in enumerate(reading.spans):
            if span is not None and span not in positions[word]:
                positions[word].append(span)
    return positions


def masked(adapter: Any, prompt: str, texts: Sequence[str], masks: np.ndarray) -> dict[str, Any]:
    """Pipeline keyword arguments for coalitions ``masks`` (n, d) of ``prompt``'s words, whose texts
    (the kept words) are ``texts``: the full prompt's encodings with the dropped words' positions
    taken from the empty prompt's; pooled embeddings of ``texts``; negatives repeated."""
    family = adapter.family
    full, empty = family.encode(adapter, [prompt]), family.encode(adapter, [""])
    n = len(masks)
    embeds = full["prompt_embeds"].repeat(n, 1, 1)
    positions = word_positions(adapter, prompt)
    for row, mask in enumerate(np.asarray(masks, dtype=bool)):
        for word, keep in zip(positions, mask):
            if not keep:
                for start, end in word:
                    embeds[row, start:end] = empty["prompt_embeds"][0, start:end]
    out = dict(prompt_embeds=embeds)
    if "pooled_prompt_embeds" in full:
        out["pooled_prompt_embeds"] = family.encode(adapter, list(texts))["pooled_prompt_embeds"]
    if "prompt_attention_mask" in full:
        out["prompt_attention_mask"] = full["prompt_attention_mask"].repeat(n, 1)
    for key, value in full.items():
        if key.startswith("negative_"):
            out[key] = value.repeat(n, *([1] * (value.ndim - 1)))
    if "negative_prompt_embeds" in out:
        out["negative_prompt"] = None  # PixArt defaults it to "" and refuses it beside the embeddings
    return out
