"""Explanation runs of the web app: validated at submission, run one at a time on a worker thread
(never in a request handler), with progress, an estimate of the time left and cancellation.

Every run writes what ``diffexplain explain --attention`` writes (``explanation.json`` /
``.safetensors``, ``attention.json`` / ``.safetensors``, ``image.png``) into its own folder of the
results folder, plus ``run.json`` (its request and state), and shares one generation cache, so
asking again costs nothing.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_ID_LENGTH = 12  # hex characters; run folders are named by them alone


class Cancelled(Exception):
    """Raised inside a run's progress callback once its cancellation is asked for."""


@dataclass
class Run:
    """One run's request and live state (``state``: queued, running, done, error, cancelled)."""

    id: str
    request: dict[str, Any]
    state: str = "queued"
    done: int = 0
    total: int = 0
    started: float | None = None
    message: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        eta = None
        if self.state == "running" and self.started and self.done and self.total:
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * (self.total - self.done)
        return dict(id=self.id, state=self.state, done=self.done, total=self.total, eta_s=eta, message=self.message,
                    request=self.request)


class Runner:
    """Runs explanations of the app's models on one worker thread.

    Args:
        models: ``{name: model}`` (a registered name or a pipeline folder) the app offers.
        results: the results folder (one sub-folder per run, and the shared cache).
        ray: ``RayExecutor`` options (workers, address, ...) to generate text-to-image runs on Ray
            actors, one set per model started at its first run; None: in the worker thread. Edit
            models (a source image per run) always generate in the worker thread.
    """

    def __init__(self, models: dict[str, str], results: Path, ray: dict[str, Any] | None = None):
        from ..cache import GenerationCache

        self.models, self.results, self.ray = dict(models), Path(results), ray
        self._executors: dict[str, Any] = {}
        self.results.mkdir(parents=True, exist_ok=True)
        self.cache = GenerationCache(self.results / "cache.sqlite")  # every run's, and the page's images
        self.runs: dict[str, Run] = {}
        self._pipes: dict[str, Any] = {}
        self._text_adapters: dict[str, Any] = {}  # one per model: its fingerprint is hashed once
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffexplain-run")
        self._lock = threading.Lock()

    def adapter(self, model: str, source: Any = None, mask: Any = None, reference: Any = None) -> Any:
        """The model's adapter (loaded once): a ``PaintByExampleAdapter`` when the pipeline takes a
        reference image, an ``EditAdapter`` when it takes a source image, else a ``TextToImageAdapter``."""
        import inspect

        from ..models.loading import load_pipeline

        if model not in self.models:
            raise ValueError(f"model must be one of {sorted(self.models)}, got {model!r}")
        with self._lock:
            if model not in self._pipes:
                self._pipes[model] = load_pipeline(self.models[model])
        pipe = self._pipes[model]
        parameters = inspect.signature(pipe.__call__).parameters
        if "example_image" in parameters:  # a reference image: I2AM maps, no words
            from ..models.edit_adapter import PaintByExampleAdapter

            missing = [name for name, value in (("source", source), ("mask", mask), ("reference", reference))
                       if value is None]
            if missing:
                raise ValueError(f"model {model!r} inserts a reference into a masked source: upload "
                                 f"{', '.join(missing)}")
            return PaintByExampleAdapter(pipe, image=source, mask=mask, reference=reference)
        if mask is not None or reference is not None:
            raise ValueError(f"model {model!r} takes no mask or reference image")
        takes_image = "image" in parameters
        if takes_image:
            from ..models.edit_adapter import EditAdapter

            if source is None:
                raise ValueError(f"model {model!r} edits a source image: upload one")
            return EditAdapter(pipe, image=source)
        if source is not None:
            raise ValueError(f"model {model!r} generates from text alone: it takes no source image")
        from ..models.adapter import TextToImageAdapter

        with self._lock:
            if model not in self._text_adapters:
                self._text_adapters[model] = TextToImageAdapter(pipe)
        return self._text_adapters[model]

    def executor(self, model: str, adapter: Any) -> Any:
        """Where a run's generations go: None (in this thread) or the model's ``RayExecutor``."""
        if self.ray is None or getattr(adapter, "takes_source", False):
            return None
        if model not in self._executors:
            from ..executors import RayExecutor, spec_of

            self._executors[model] = RayExecutor(spec_of(adapter, self.models[model]), **self.ray)
        return self._executors[model]

    def submit(self, request: dict[str, Any], source: Any = None, mask: Any = None, reference: Any = None) -> Run:
        """Validate a request (model, prompt and the ``ExplainSettings`` fields) and queue its run.

        Raises:
            ValueError: naming the field and the value, before anything is queued.
        """
        from ..explain.settings import ExplainSettings

        allowed = {"model", "prompt", "method", "budget", "seeds", "seed", "perturbation"}
        unknown = sorted(set(request) - allowed)
        if unknown:
            raise ValueError(f"unknown request fields {unknown}; the fields are {sorted(allowed)}")
        settings = ExplainSettings(**{k: v for k, v in request.items() if k not in ("model", "prompt")
                                      and v not in (None, "")})
        adapter = self.adapter(str(request.get("model")), source, mask, reference)
        if not hasattr(adapter, "words"):  # a reference-image model: I2AM, the prompt is not used
            request = dict(request, prompt="")
        else:
            prompt = request.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError("prompt must be a non-empty text")
            adapter.words(prompt)  # a word the model does not know, or a prompt too long: refused here
        run = Run(id=secrets.token_hex(RUN_ID_LENGTH // 2), request=dict(request))
        self.runs[run.id] = run
        folder = self.results / run.id
        folder.mkdir()
        self._write(run)
        self._pool.submit(self._work, run, adapter, settings)
        return run

    def _write(self, run: Run) -> None:
        (self.results / run.id / "run.json").write_text(json.dumps(run.status(), indent=2) + "\n")

    def _work(self, run: Run, adapter: Any, settings: Any) -> None:
        from PIL import Image

        from ..attention.record import record_views
        from ..explain.api import PromptExplainer

        folder = self.results / run.id
        run.state, run.started = "running", time.monotonic()
        self._write(run)

        def progress(done: int, total: int) -> None:
            run.done, run.total = done, total
            if run.cancel.is_set():
                raise Cancelled()

        try:
            if run.cancel.is_set():
                raise Cancelled()
            if not hasattr(adapter, "words"):
                self._i2am(adapter, settings.image_seeds[0], folder)
                run.state = "done"
                self._write(run)
                return
            explanation = PromptExplainer(adapter, settings, cache=self.cache, progress=progress,
                                          executor=self.executor(run.request["model"], adapter)).explain(
                run.request["prompt"])
            explanation.save(folder)
            image, maps, output = record_views(adapter, run.request["prompt"], settings.image_seeds[0])
            maps.save(folder)
            if output is not None:
                output.save(folder / "output")
            Image.fromarray(image).save(folder / "image.png")
            run.state = "done"
        except Cancelled:
            run.state, run.message = "cancelled", "cancelled: the images made so far are in the cache"
        except Exception as error:  # noqa: BLE001 - shown on the page, never a traceback
            run.state, run.message = "error", f"{type(error).__name__}: {error}"
        self._write(run)

    @staticmethod
    def _i2am(adapter: Any, seed: int, folder: Path) -> None:
        """I2AM maps of one generation: the image, the maps as overlays and their IMACS (i2am.json)."""
        import torch
        from PIL import Image

        from ..attention.maps import overlay
        from ..image2image.i2am import i2am_paint_by_example

        result = i2am_paint_by_example(adapter, seed=seed)
        Image.fromarray(result.image).save(folder / "image.png")
        views = {"r2g": overlay(result.image, torch.from_numpy(result.r2g)),
                 "g2r": overlay(adapter.reference, torch.from_numpy(result.g2r))}
        if result.guidance is not None:
            views["guidance"] = overlay(result.image, torch.from_numpy(result.guidance))
        for name, view in views.items():
            Image.fromarray(view).resize((256, 256), Image.Resampling.NEAREST).save(folder / f"i2am_{name}.png")
        (folder / "i2am.json").write_text(json.dumps(dict(
            imacs_r2g=result.imacs_r2g, imacs_guidance=result.imacs_guidance, maps=sorted(views)), indent=2) + "\n")

    def status(self, run_id: str) -> dict[str, Any] | None:
        """A run's live status, or the one its folder recorded (a past run), or None."""
        if run_id in self.runs:
            return self.runs[run_id].status()
        recorded = self.results / run_id / "run.json"
        return _recorded(recorded) if recorded.is_file() else None

    def cancel(self, run_id: str) -> bool:
        run = self.runs.get(run_id)
        if run is None or run.state not in ("queued", "running"):
            return False
        run.cancel.set()
        return True

    def past(self) -> list[dict[str, Any]]:
        """Every run in the results folder, newest first."""
        rows = []
        for recorded in self.results.glob("*/run.json"):
            status = self.runs[recorded.parent.name].status() if recorded.parent.name in self.runs else \
                _recorded(recorded)
            rows.append(dict(status, modified=recorded.stat().st_mtime))
        return sorted(rows, key=lambda r: -r["modified"])

    def close(self) -> None:
        for run in self.runs.values():
            run.cancel.set()
        self._pool.shutdown(wait=True)
        for executor in self._executors.values():
            executor.close()


def _recorded(path: Path) -> dict[str, Any]:
    """A past run's status from its folder; one that was queued or running when its server stopped
    is "interrupted" (the images it made are in the cache)."""
    status = json.loads(path.read_text())
    if status.get("state") in ("queued", "running"):
        status["state"], status["message"] = "interrupted", "the server stopped during this run"
    return status
