"""Where generations run: in the calling process (the default) or on Ray actors.

An explanation asks for batches of generations (a coalition's conditioning and a seed each). An
executor runs the batches and yields each one's images as it completes; the driver alone writes
them to the cache, so results are the same images whichever executor made them, and a driver
killed mid-run loses only the batches in flight (a re-run finds the rest in the cache).

The Ray executor starts ``workers`` actors (or uses a running cluster, ``address``). Each
rebuilds the adapter from an ``AdapterSpec`` (a local pipeline folder and the adapter's
settings) and checks that its model fingerprint and settings match the driver's before it is
used. An actor that dies mid-batch is replaced and its batch re-run elsewhere; a batch is
written once, by the first result that arrives.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .protocols import Adapter
from .work import Work

if TYPE_CHECKING:
    from .models.adapter import TextToImageAdapter
    from .protocols import Executor

__all__ = ["AdapterSpec", "InProcessExecutor", "RayExecutor", "Work", "check_images", "generate", "measure", "spec_of"]


def generate(adapter: Adapter, work: Work) -> np.ndarray:
    """Run one batch on ``adapter``: uint8 (n, H, W, 3)."""
    return work.perturbation.generate(adapter, work.prompt, work.masks, work.seeds)


def check_images(images: np.ndarray, work: Work) -> None:
    """Refuse a batch with an all-black image (a safety checker's output, or a NaN decode)."""
    black = [i for i, image in enumerate(images) if not image.any()]
    if black:
        what = [work.conditionings()[i] for i in black]
        raise RuntimeError(f"generation returned an all-black image (safety checker or NaN) for seeds "
                           f"{[work.seeds[i] for i in black]}, conditionings {what}; not used")


class InProcessExecutor:
    """Generate in the calling process, one batch after another."""

    name = "in-process"

    def run(self, adapter: Adapter, batches: Sequence[Work]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (batch index, images) for every batch, in order."""
        for index, work in enumerate(batches):
            images = generate(adapter, work)
            check_images(images, work)
            yield index, images

    def close(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    """How a worker rebuilds the driver's adapter.

    Attributes:
        model: a registered pipeline name or a local pipeline folder (``load_pipeline``).
        options: keyword arguments of ``TextToImageAdapter`` (or ``EditAdapter`` with ``edit``).
        edit: build an ``EditAdapter`` (``options`` holds its image, mask, strength...).
        threads: torch threads in each worker (same as the driver's by default: CPU results can
            depend on the thread count).
    """

    model: str
    options: dict = dataclasses.field(default_factory=dict)
    edit: bool = False
    threads: int | None = None

    def build(self) -> Any:
        from .models.adapter import TextToImageAdapter
        from .models.edit_adapter import EditAdapter
        from .models.loading import load_pipeline

        return (EditAdapter if self.edit else TextToImageAdapter)(load_pipeline(self.model), **self.options)


def identity(adapter: Adapter) -> tuple[str, str]:
    """What must match between the driver's adapter and a worker's: model fingerprint and settings."""
    import json

    return adapter.fingerprint, json.dumps(adapter.settings(), sort_keys=True, default=str)


class _Worker:
    """A Ray actor's body: one adapter, batches in, uint8 images out."""

    def __init__(self, spec: AdapterSpec):
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        self.adapter = spec.build()
        try:
            import ray

            gpus = ray.get_gpu_ids()
        except Exception:  # not inside a Ray actor (tests call it directly)
            gpus = []
        if gpus:  # the actor was given a GPU (--gpus-per-worker): Ray sets CUDA_VISIBLE_DEVICES to it
            self.adapter.pipe.to("cuda")

    def identity(self) -> tuple[str, str]:
        return identity(self.adapter)

    def run(self, work: Work) -> np.ndarray:
        return generate(self.adapter, work)


class RayExecutor:
    """Generate on Ray actors, one adapter each.

    Args:
        spec: how each actor rebuilds the adapter.
        workers: number of actors.
        address: a running cluster's address (default: start a local Ray instance for this run).
        num_cpus, num_gpus: resources of each actor (one GPU each where there are GPUs).
        in_flight: batches queued per actor.
        max_restarts: actors replaced after deaths before the run fails.
    """

    name = "ray"

    def __init__(self, spec: AdapterSpec, *, workers: int = 2, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, in_flight: int = 2, max_restarts: int = 8):
        import ray

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight}")
        self.spec, self.workers, self.in_flight, self.max_restarts = spec, workers, in_flight, max_restarts
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self._started and address is None:  # a local instance cannot grow: extra actors would wait forever
            total = ray.cluster_resources()
            for name, each in (("CPU", num_cpus), ("GPU", num_gpus)):
                if workers * each > total.get(name, 0) + 1e-9:
                    ray.shutdown()
                    raise ValueError(f"{workers} workers x {each} {name} each exceed the local Ray instance's "
                                     f"{total.get(name, 0):g} {name}s: use fewer workers or fewer {name}s per worker")
        self._actor_class = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_Worker)
        self.actors = [self._actor_class.remote(spec) for _ in range(workers)]
        self.restarts = 0
        self.reruns = 0  # batches re-run after their actor died
        self._checked: set = set()

    def _check(self, adapter, actors) -> None:
        import ray

        want = identity(adapter)
        for actor, got in zip(actors, ray.get([a.identity.remote() for a in actors])):
            if tuple(got) != want:
                raise RuntimeError(f"a Ray worker built a different model or settings from {self.spec.model!r} "
                                   f"(fingerprint {got[0]} vs the driver's {want[0]}): refusing to mix their images")
            self._checked.add(actor)

    def run(self, adapter: Adapter, batches: Sequence[Work]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (batch index, images) as batches complete, in any order; each batch exactly once."""
        import ray
        from ray.exceptions import RayActorError

        self._check(adapter, [a for a in self.actors if a not in self._checked])
        pending = list(range(len(batches)))[::-1]
        running: dict = {}  # object ref -> (batch index, actor)
        load = {actor: 0 for actor in self.actors}

        def submit(actor) -> None:
            while pending and load[actor] < self.in_flight:
                index = pending.pop()
                running[actor.run.remote(batches[index])] = (index, actor)
                load[actor] += 1

        for actor in self.actors:
            submit(actor)
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            index, actor = running.pop(ref)
            try:
                images = ray.get(ref)
            except RayActorError:
                pending.append(index)  # re-run it elsewhere; the dead actor's other batches fail the same way
                self.reruns += 1
                if actor in load:
                    del load[actor]
                    self.actors.remove(actor)
                    self.restarts += 1
                    if self.restarts > self.max_restarts:
                        raise RuntimeError(f"{self.restarts} Ray workers died; giving up") from None
                    replacement = self._actor_class.remote(self.spec)
                    self._check(adapter, [replacement])
                    self.actors.append(replacement)
                    load[replacement] = 0
                for other in list(load):
                    submit(other)
                continue
            load[actor] -= 1
            check_images(images, batches[index])
            yield index, images
            submit(actor)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)  # type: ignore[arg-type]
        self.actors = []
        if self._started:
            ray.shutdown()


def measure(executor: Executor, adapter: Adapter, work: Work) -> float:
    """Seconds per image of one batch on ``executor`` (a warm-up for cost estimates)."""
    start = time.perf_counter()
    for _ in executor.run(adapter, [work]):
        pass
    return (time.perf_counter() - start) / len(work.seeds)


def spec_of(adapter: TextToImageAdapter, model: str, **extra: Any) -> AdapterSpec:
    """The ``AdapterSpec`` that rebuilds a ``TextToImageAdapter`` like ``adapter`` from ``model``."""
    import torch

    options = dict(num_inference_steps=adapter.num_inference_steps, guidance_scale=adapter.guidance_scale,
                   height=adapter.height, width=adapter.width, batch_size=adapter.batch_size,
                   pipeline_kwargs=dict(adapter.pipeline_kwargs) or None, **extra)
    return AdapterSpec(model=model, options=options, threads=torch.get_num_threads())
