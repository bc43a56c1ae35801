"""The collaborators' contracts, as typing Protocols: what an adapter, an executor, a cache and an
explainer must offer (the classes here satisfy them; a user's own may too)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Protocol,
    runtime_checkable,
)

import numpy as np

if TYPE_CHECKING:
    import torch

    from .models.words import EncoderReading
    from .types import Explanation
    from .work import Work


@runtime_checkable
class Adapter(Protocol):
    """Generates images of a user's pipeline with explicit seeds and locates a prompt's words
    (``models.adapter.TextToImageAdapter``, ``models.edit_adapter.EditAdapter``)."""

    pipe: Any
    family: Any
    height: int
    width: int
    batch_size: int
    num_inference_steps: int
    guidance_scale: float
    pipeline_kwargs: dict[str, Any]

    @property
    def fingerprint(self) -> str: ...

    @property
    def device(self) -> torch.device: ...

    def settings(self) -> dict[str, Any]: ...

    def words(self, prompt: str) -> list[str]: ...

    def readings(self, prompt: str) -> list[EncoderReading]: ...

    def context_spans(self, prompt: str) -> list[tuple[int, int]]: ...

    def encode(self, prompts: Sequence[str]) -> torch.Tensor: ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray: ...

    def run_batches(self, seeds: Sequence[int], inputs: Callable[[slice], dict[str, Any]]) -> np.ndarray: ...

    def variant(self, pipe: Any = None, **changes: Any) -> Adapter: ...


@runtime_checkable
class Executor(Protocol):
    """Runs batches of generations and yields (batch index, uint8 images) as each completes."""

    def run(self, adapter: Adapter, batches: Sequence[Work]) -> Iterator[tuple[int, np.ndarray]]: ...


@runtime_checkable
class Cache(Protocol):
    """A store of generated images and their embeddings by key (``cache.GenerationCache``), with
    leases so concurrent runs never generate the same image twice."""

    keep_images: bool

    def readable(self, keys: Iterable[str]) -> set[str]: ...

    def claim(self, keys: Iterable[str]) -> tuple[list[str], list[str]]: ...

    def renew(self, keys: Iterable[str]) -> None: ...

    def release(self, keys: Iterable[str]) -> None: ...

    def put_images(self, rows: Iterable[tuple[str, str, str, int, Mapping[str, Any], np.ndarray]]) -> None: ...

    def get_images(self, keys: Iterable[str]) -> dict[str, np.ndarray]: ...

    def get_embeddings(self, keys: Iterable[str], embedder: str) -> dict[str, np.ndarray]: ...

    def put_embeddings(self, items: Mapping[str, np.ndarray], embedder: str) -> None: ...


@runtime_checkable
class Game(Protocol):
    """d players, and values of coalitions: bool (n, d) -> float (n, K), one column per image seed."""

    n_players: int

    def __call__(self, masks: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Explainer(Protocol):
    """Attributes a game's value to its players within a budget of distinct coalitions."""

    name: str

    def explain(self, game: Game, *, budget: int | None, seed: int = 0) -> Explanation: ...
