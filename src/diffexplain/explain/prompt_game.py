"""The value of a coalition of prompt words: how close the image generated from the perturbed
prompt stays to the image of the full prompt, with the same seeds (common random numbers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from ..cache import GenerationCache, generation_key
from ..embed.embedders import Embedder
from ..embed.similarity import bootstrap_w1_null, pairwise_similarity, wasserstein_1d
from ..executors import InProcessExecutor, Work
from ..models.perturbations import Perturbation
from ..protocols import Adapter, Cache, Executor
from .settings import ExplainSettings


def word_movers_distance(source: np.ndarray, target: np.ndarray) -> float:
    """Word mover's distance between two bags of word vectors (uniform weights, cosine cost).

    Args:
        source: (n, D) vectors; target: (m, D) vectors.
    """
    from scipy.optimize import linprog

    if len(target) == 0 or len(source) == 0:
        return 1.0
    a = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    b = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
    cost = np.clip(1.0 - a @ b.T, 0.0, 2.0)
    n, m = cost.shape
    rows = np.zeros((n + m, n * m))
    for i in range(n):
        rows[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        rows[n + j, j::m] = 1
    supply = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    result = linprog(cost.ravel(), A_eq=rows, b_eq=supply, bounds=(0, None), method="highs")
    return float(result.fun)


class PromptGame:
    """A cooperative game whose players are the words of ``prompt``.

    v(S) = mean over seeds of similarity(embed(image(S, seed)), embed(image(full, seed))), where
    image(S, seed) is generated under the settings' perturbation of the prompt to the words of S.

    Args:
        adapter: a ``TextToImageAdapter`` (or any ``protocols.Adapter``).
        prompt: the text to explain; its words are the players.
        settings: seeds, similarity, perturbation and reference (``ExplainSettings``).
        embedder: the image embedder (built from the settings by ``PromptExplainer``).
        cache: a ``GenerationCache`` shared across explanations (default: in memory).
        progress: optional callable(n_done, n_total) for progress bars.
        executor: where generations run (default in process).
    """

    def __init__(self, adapter: Adapter, prompt: str, settings: ExplainSettings, *, embedder: Embedder,
                 cache: Cache | None = None, progress: Callable[[int, int], None] | None = None,
                 executor: Executor | None = None):
        if settings.reference == "source" and getattr(adapter, "source", None) is None:
            raise ValueError("reference='source' needs an adapter with a source image (an EditAdapter)")
        self.settings = settings
        self.adapter = adapter
        self.prompt = prompt
        self.words = adapter.words(prompt)
        self.feature_names = tuple(self.words)
        self.n_players = len(self.words)
        self.seeds = list(settings.image_seeds)
        self.embedder = embedder
        self.similarity = settings.similarity
        self.perturbation: Perturbation = settings.perturbation  # type: ignore[assignment]
        self.cache: Cache = cache if cache is not None else GenerationCache()
        self.progress = progress
        self.executor = executor
        self.generation_seconds = 0.0  # wall time spent generating new images (cost measurements)
        self.generated = 0
        self._requested: set[str] = set()
        self._cached: set[str] = set()
        self._reference: np.ndarray | None = None
        self.perturbation.check(adapter, prompt)

    # -- what is sent to the model --------------------------------------------------------------
    def conditioning(self, mask: np.ndarray) -> str:
        """The exact conditioning sent to the model, as stored in the cache."""
        return self.perturbation.conditioning(self.prompt, mask)

    def key(self, mask: np.ndarray, seed: int) -> str:
        """The generation-cache key of one coalition's image with one seed."""
        return generation_key(self.adapter.fingerprint, self.conditioning(mask), seed, self.adapter.settings())

    def keys(self, masks: np.ndarray) -> list[list[str]]:
        """Cache keys (n, K) of coalitions ``masks`` with every seed."""
        return [[self.key(m, s) for s in self.seeds] for m in np.asarray(masks, dtype=bool)]

    # -- generation through the cache ---------------------------------------------------------
    def _ensure_images(self, masks: np.ndarray) -> list[list[str]]:
        """Keys (n, K) of every image, generating those not in the cache (one transaction a batch)."""
        keys = self.keys(masks)
        flat = [(k, m, s) for row, m in zip(keys, masks) for k, s in zip(row, self.seeds)]
        wanted = {k: (m, s) for k, m, s in flat if k not in self._requested}
        have = self.cache.readable(wanted) if wanted else set()  # a PNG that does not decode is made again
        self._cached |= have - self._requested
        self._requested |= set(wanted)
        missing = [k for k in wanted if k not in have]
        total, done = len(missing), 0
        while missing:
            # claim what no other live run is generating and no run has stored; wait for the rest
            mine, theirs = self.cache.claim(missing)
            arrived = set(missing) - set(mine) - set(theirs)  # stored by another run since the last look
            self._cached |= arrived
            done += len(arrived)
            try:
                done = self._generate([(k, *wanted[k]) for k in mine], done, total)
            finally:
                self.cache.release(mine)
            missing = theirs
            if missing:
                time.sleep(0.5)
        return keys

    def _generate(self, todo: list, done: int, total: int) -> int:
        """Generate (key, mask, seed) rows in batches, each written to the cache as it completes."""
        batch = self.adapter.batch_size
        chunks = [todo[start:start + batch] for start in range(0, len(todo), batch)]
        works = [self._work(chunk) for chunk in chunks]
        executor = self.executor if self.executor is not None else InProcessExecutor()
        renewed = time.monotonic()
        started = time.perf_counter()
        for index, images in executor.run(self.adapter, works):  # the driver alone writes the cache
            chunk = chunks[index]
            if not getattr(self.cache, "keep_images", True):  # embeddings-only: embed before the pixels go
                vectors = self.embedder.embed(np.asarray(images)).astype(np.float32)
                self.cache.put_embeddings({k: v for (k, _, _), v in zip(chunk, vectors)}, self.embedder.name)
            self.cache.put_images((k, self.adapter.fingerprint, self.conditioning(m), s, self.adapter.settings(), im)
                                  for (k, m, s), im in zip(chunk, images))
            if time.monotonic() - renewed > 60:  # keep the claims on what is left alive
                self.cache.renew([k for rest in chunks[index + 1:] for k, _, _ in rest])
                renewed = time.monotonic()
            done += len(chunk)
            self.generated += len(chunk)
            self.generation_seconds = self.generation_seconds + time.perf_counter() - started
            started = time.perf_counter()
            if self.progress is not None:
                self.progress(done, total)
        return done

    def _work(self, chunk: list[tuple[str, np.ndarray, int]]) -> Work:
        return Work(self.prompt, np.stack([m for _, m, _ in chunk]), tuple(int(s) for _, _, s in chunk),
                    self.perturbation)

    def embeddings(self, masks: np.ndarray) -> np.ndarray:
        """Embeddings of every coalition's image per seed: (n, K, E)."""
        masks = np.asarray(masks, dtype=bool)
        keys = self._ensure_images(masks)
        flat = [k for row in keys for k in row]
        found = self.cache.get_embeddings(flat, self.embedder.name)
        missing = [k for k in dict.fromkeys(flat) if k not in found]
        for start in range(0, len(missing), 64):
            chunk = missing[start:start + 64]
            images = self.cache.get_images(chunk)
            vectors = self.embedder.embed(np.stack([images[k] for k in chunk]))
            new = dict(zip(chunk, vectors.astype(np.float32)))
            self.cache.put_embeddings(new, self.embedder.name)
            found.update(new)
        return np.stack([[found[k] for k in row] for row in keys])

    def images(self, masks: np.ndarray) -> np.ndarray:
        """Every coalition's image per seed: uint8 (n, K, H, W, 3)."""
        keys = self._ensure_images(np.asarray(masks, dtype=bool))
        found = self.cache.get_images([k for row in keys for k in row])
        return np.stack([[found[k] for k in row] for row in keys])

    def reference(self) -> np.ndarray:
        """Embeddings of the reference image per seed: (K, E)."""
        if self._reference is None:
            if self.settings.reference == "source":
                source = self.embedder.embed(cast(Any, self.adapter).source[None])[0]
                self._reference = np.repeat(source[None], len(self.seeds), axis=0)
            else:
                self._reference = self.embeddings(np.ones((1, self.n_players), bool))[0]
        return self._reference

    # -- the game -------------------------------------------------------------------------------
    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """Values (n, K): similarity of each coalition's image to the full prompt's, per seed."""
        reference = self.reference()
        return pairwise_similarity(self.embeddings(masks), reference[None], self.similarity)

    def generation_stats(self) -> tuple[int, int]:
        """(images this game asked for, of which served by the cache)."""
        return len(self._requested), len(self._cached)

    def text_distance(self, masks: np.ndarray) -> np.ndarray:
        """Word mover's distance between the prompt and each coalition's text: (n,)."""
        vectors = cast(Any, self.adapter).word_embeddings(self.prompt)  # a TextToImageAdapter method
        return np.array([word_movers_distance(vectors, vectors[np.asarray(m, bool)]) for m in masks])

    def distance_pvalues(self, masks: np.ndarray, *, n_bootstrap: int = 1000, seed: int = 0) -> tuple[np.ndarray,
                         np.ndarray]:
        """W1 between each coalition's embedding and the reference, averaged over seeds, and its
        bootstrap p-value: pool both vectors' values, resample the pool into two groups of the
        original sizes B times, p = (1 + #{W1* >= W1}) / (B + 1).

        Returns:
            (observed (n,), p-values (n,)).
        """
        rng = np.random.default_rng(seed)
        embeddings = self.embeddings(masks)
        reference = self.reference()
        observed = wasserstein_1d(embeddings, reference[None]).mean(axis=1)
        # one independent set of draws per sampler seed (the statistic averages independent images);
        # within a seed all coalitions share the draws (each p-value stays exact, see bootstrap_w1_null)
        null = np.zeros((len(masks), n_bootstrap))
        for k in range(len(self.seeds)):
            null += bootstrap_w1_null(embeddings[:, k], np.broadcast_to(reference[k], embeddings[:, k].shape),
                                      n_bootstrap, rng)
        null /= len(self.seeds)
        pvalues = (1 + (null >= observed[:, None]).sum(axis=1)) / (n_bootstrap + 1)
        return observed, pvalues
