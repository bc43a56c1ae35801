"""Dataset audits: one explanation per prompt of a file, and what the words do across them.

A prompt file holds one prompt per line; blank lines and lines starting with ``#`` are skipped;
``GROUP<TAB>prompt`` puts a prompt in a group (e.g. ``doctor`` / ``nurse`` prompts), and the
summary then compares the first two groups.

An audit writes ``prompts/NNNN/explanation.json`` (+ ``.safetensors``) per prompt and keeps every
generation in one cache, so a re-run skips finished prompts and, within a prompt, finished
generations: a killed audit resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Explanation, Explanations, WordStats
from .api import PromptExplainer


def read_prompts(path: str | Path) -> list[tuple[str | None, str]]:
    """(group or None, prompt) for every prompt line of ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"prompts must be a text file, got {str(path)!r} (no such file)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, tab, prompt = line.partition("\t")
        group: str | None = label if tab else None
        if not tab:
            prompt = line
        if not prompt.strip():
            raise ValueError(f"{path}:{number}: a group without a prompt: {line!r}")
        rows.append((group.strip() if group else None, prompt.strip()))
    if not rows:
        raise ValueError(f"prompts file {str(path)!r} holds no prompt")
    return rows


@dataclasses.dataclass(frozen=True)
class AuditSummary:
    """What the words do across a prompt set.

    Attributes:
        method: the explainer.
        n_prompts: prompts explained.
        words: every word's ``WordStats``, most influential first.
        groups: the group names, in file order (empty without groups).
        group_words: group -> its words' ``WordStats``.
        differences: (word, mean in group 0 - mean in group 1) for words in both, largest |difference| first.
    """

    method: str
    n_prompts: int
    words: tuple[WordStats, ...]
    groups: tuple[str, ...] = ()
    group_words: dict = dataclasses.field(default_factory=dict)
    differences: tuple[tuple[str, float], ...] = ()

    def most(self, k: int = 10, min_count: int = 1) -> list[WordStats]:
        return [w for w in self.words if w.count >= min_count][:k]

    def least(self, k: int = 10, min_count: int = 1) -> list[WordStats]:
        return [w for w in self.words if w.count >= min_count][::-1][:k]

    def plot(self, *, min_count: int = 2, k: int = 30, ax: Any = None) -> Any:
        """The words' mean shares with ± std bars: a matplotlib ``Figure`` (no pyplot)."""
        from ..plots import audit_bar

        return audit_bar(self, min_count=min_count, k=k, ax=ax)

    def _repr_html_(self) -> str:
        from ..plots import summary_html

        return summary_html(self)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def word_shares(explanation: Explanation) -> dict[str, list[float]]:
    """Each word's signed share of the explanation's total |attribution| (lowercased; repeats listed)."""
    return Explanations((explanation,)).word_shares()


def summarise(explanations: Sequence[Explanation] | Explanations,
              groups: Sequence[str | None] | None = None) -> AuditSummary:
    """The dataset-level summary of explanations (one per prompt), from their cohorts by group."""
    batch = explanations if isinstance(explanations, Explanations) else Explanations(tuple(explanations),
                                                                                      tuple(groups or ()))
    if not len(batch):
        raise ValueError("summarise needs at least one explanation")
    cohorts = batch.cohorts()
    group_words = {name: cohort.word_stats() for name, cohort in cohorts.items()}
    names = tuple(cohorts)
    differences: tuple = ()
    if len(names) >= 2:
        first = {s.word: s.mean for s in group_words[names[0]]}
        second = {s.word: s.mean for s in group_words[names[1]]}
        differences = tuple(sorted(((w, first[w] - second[w]) for w in first.keys() & second.keys()),
                                   key=lambda item: (-abs(item[1]), item[0])))
    return AuditSummary(method=batch.items[0].method, n_prompts=len(batch), words=batch.word_stats(),
                        groups=names, group_words=group_words, differences=differences)


def audit(explainer: PromptExplainer, prompts: Sequence[tuple[str | None, str]], out: str | Path, *,
          on_prompt: Callable[[int, str, bool], None] | None = None) -> AuditSummary:
    """Explain every prompt with ``explainer`` (a ``PromptExplainer``: its settings say the method,
    budget and seeds), resuming from ``out``.

    Args:
        explainer: its cache should be a file (e.g. ``out/cache.sqlite``) for a killed run to resume.
        prompts: (group, prompt) pairs (``read_prompts``).
        out: folder of the per-prompt explanations and ``summary.json``.
        on_prompt: called with (index, prompt, skipped) before each prompt.

    Returns:
        The ``AuditSummary`` (also written to ``out/summary.json``).
    """
    out = Path(out)
    method = explainer.settings.method
    explanations = []
    for index, (_, prompt) in enumerate(prompts):
        folder = out / "prompts" / f"{index:04d}"
        done = (folder / "explanation.json").is_file()
        if on_prompt is not None:
            on_prompt(index, prompt, done)
        if done:
            explanation = Explanation.load(folder)
            if explanation.method != method or explanation.metadata.get("prompt") != prompt:
                raise ValueError(f"{folder} holds a {explanation.method} explanation of "
                                 f"{explanation.metadata.get('prompt')!r}, "
                                 f"not {method} of {prompt!r}: use another --out or delete it")
        else:
            explanation = explainer.explain(prompt)
            explanation.save(folder)  # written last: a prompt counts as finished only when whole
        explanations.append(explanation)
    summary = summarise(Explanations(tuple(explanations), tuple(g for g, _ in prompts)))
    (out / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


class _OverlayCache:
    """A read-through view of a cache that keeps writes to itself: a dry run sees what is cached
    and changes nothing."""

    keep_images = True

    def __init__(self, base):
        self.base, self.written = base, set()

    def has(self, keys):
        keys = list(keys)
        return self.base.has(keys) | {k for k in keys if k in self.written}

    readable = has

    def claim(self, keys):
        return list(keys), []

    def renew(self, keys):
        pass

    release = renew

    def put_images(self, rows):
        self.written.update(row[0] for row in rows)

    def get_images(self, keys):
        return {k: np.full((2, 2, 3), 128, np.uint8) for k in keys}

    def get_embeddings(self, keys, embedder):
        return {}

    def put_embeddings(self, items, embedder):
        pass


class _CountingExecutor:
    """Counts the images a run would generate, and generates none."""

    def __init__(self):
        self.count = 0

    def run(self, adapter, batches):
        for index, work in enumerate(batches):
            self.count += len(work.seeds)
            yield index, np.full((len(work.seeds), 2, 2, 3), 128, np.uint8)


def plan(explainer: PromptExplainer, prompts: Sequence[tuple[str | None, str]], out: str | Path) -> list[int]:
    """The number of new generations each prompt of an audit needs: 0 for a finished prompt, else
    the coalitions x seeds its explainer asks for that are neither in ``explainer.cache`` nor
    planned for an earlier prompt of the file. Runs the explainer on stand-in images (the
    coalitions an explainer draws do not depend on the values)."""
    from ..embed import PixelEmbedder

    counts = []
    overlay = _OverlayCache(explainer.cache)  # one for all prompts: they share coalitions ("a red circle")
    settings = dataclasses.replace(explainer.settings, embedder=PixelEmbedder(size=2), embedder_size=None,
                                   embedder_path=None)
    for index, (_, prompt) in enumerate(prompts):
        if (Path(out) / "prompts" / f"{index:04d}" / "explanation.json").is_file():
            counts.append(0)
            continue
        counter = _CountingExecutor()
        PromptExplainer(explainer.adapter, settings, cache=overlay, executor=counter).explain(prompt)
        counts.append(counter.count)
    return counts
