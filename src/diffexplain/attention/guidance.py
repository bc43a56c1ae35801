"""Guidance-difference maps: where a condition changes the denoiser's prediction.

Under classifier-free guidance the UNet predicts with and without the condition at every step;
``|pred(cond) - pred(uncond)|``, averaged over latent channels and summed over steps, is a map of
where the condition (a prompt, or a Paint-by-Example reference) moves the image. It complements
attention maps where those say little: with a single context token (Paint-by-Example's reference
embedding) the key-softmax is 1 at every position, so the attention logits never reach the
output and receive no gradient in training; the spatially normalised logits that I2AM maps are
then set by weights the training never shaped. The guidance difference is computed from the
prediction itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .recorder import time_group

LAYOUTS = ("auto", "cfg", "pix2pix")


class GuidanceRecorder:
    """Record ``|pred(cond) - pred(uncond)|`` per step from a forward hook on the pipeline's UNet.

    Args:
        pipe: a diffusers pipeline with a ``unet``, run with guidance (scale > 1).
        time_groups: number of equal ranges of the training timesteps, group 0 = the noisiest.
        batch_layout: "cfg" ([uncond, cond] halves: Stable Diffusion, Paint-by-Example),
            "pix2pix" (InstructPix2Pix's [text+image, image, none] thirds: the text's effect,
            rows 1 vs 2) or "auto" (pix2pix on a pipeline taking an image guidance scale, else cfg).

    Example:
        >>> with GuidanceRecorder(pipe) as recorder:
        ...     image = pipe(...).images[0]
        >>> heat = recorder.map((64, 64))   # float32 (64, 64)
    """

    def __init__(self, pipe: Any, *, time_groups: int = 5, batch_layout: str = "auto"):
        unet = getattr(pipe, "unet", None)
        if not isinstance(unet, torch.nn.Module):
            raise ValueError(f"pipe must be a pipeline with a unet, got {type(pipe).__name__}")
        if time_groups < 1:
            raise ValueError(f"time_groups must be >= 1, got {time_groups}")
        if batch_layout not in LAYOUTS:
            raise ValueError(f"batch_layout must be one of {LAYOUTS}, got {batch_layout!r}")
        if batch_layout == "auto":
            from ..models.families import layout_when_guided

            batch_layout = layout_when_guided(pipe)
        self.pipe, self.unet, self.layout, self.time_groups = pipe, unet, batch_layout, time_groups
        scheduler = getattr(pipe, "scheduler", None)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps) if scheduler is not None else 1000
        self.sums: torch.Tensor | None = None  # (B, G, h, w)
        self.counts = torch.zeros(time_groups)
        self._handle: Any | None = None  # the forward hook's RemovableHandle

    @torch.no_grad()
    def _hook(self, module, args, kwargs, output):
        sample = output[0] if isinstance(output, tuple) else output.sample
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        t = float(torch.as_tensor(timestep).reshape(-1)[0])
        group = time_group(t, self.num_train_timesteps, self.time_groups)
        batch = sample.shape[0]
        parts = 3 if self.layout == "pix2pix" else 2
        if batch % parts:
            raise RuntimeError(f"batch_layout {self.layout!r} needs a UNet batch divisible by {parts}, got {batch}; "
                               "is guidance on (scale > 1)?")
        n = batch // parts
        if self.layout == "pix2pix":
            cond, uncond = sample[:n], sample[n:2 * n]
        else:
            uncond, cond = sample[:n], sample[n:]
        diff = (cond.float() - uncond.float()).abs().mean(dim=1).cpu()  # (n, h, w)
        if self.sums is None:
            self.sums = torch.zeros(n, self.time_groups, *diff.shape[1:])
        if self.sums.shape[0] != n or self.sums.shape[2:] != diff.shape[1:]:
            raise RuntimeError("the UNet batch changed shape between steps; use one recorder per generation call")
        self.sums[:, group] += diff
        self.counts[group] += 1

    def __enter__(self) -> GuidanceRecorder:
        self.sums, self.counts = None, torch.zeros(self.time_groups)
        self._handle = self.unet.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def map(self, image_size: tuple[int, int], *, index: int = 0,
            time_groups: Sequence[int] | None = None) -> np.ndarray:
        """The summed difference of image ``index`` over ``time_groups`` (default all), bilinearly
        upsampled to ``image_size`` (H, W): float32 (H, W)."""
        if self.sums is None:
            raise RuntimeError("nothing recorded: generate inside the `with GuidanceRecorder(...)` block")
        if not 0 <= index < self.sums.shape[0]:
            raise ValueError(f"index must be in [0, {self.sums.shape[0]}), got {index}")
        groups = list(range(self.time_groups)) if time_groups is None else list(time_groups)
        grid = self.sums[index, groups].sum(0)[None, None]
        up = F.interpolate(grid, size=tuple(image_size), mode="bilinear", align_corners=False)
        return up[0, 0].numpy().astype(np.float32)

    def time_view(self, image_size: tuple[int, int], *, index: int = 0) -> np.ndarray:
        """(G, H, W): one map per time group (group 0 = noisiest)."""
        return np.stack([self.map(image_size, index=index, time_groups=[g]) for g in range(self.time_groups)])
