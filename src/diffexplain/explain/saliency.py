"""Gradient saliency (Simonyan et al., 2014; Smilkov et al., 2017; Sundararajan et al., 2017):
which pixels and which words a similarity score is sensitive to. Needs a differentiable embedder
(``embed_tensor``); perturbation methods do not.

- Pixel saliency of a word: gradients of sim(embed(image), embed(image of the word alone)) with
  respect to the generated image.
- Token saliency: gradients of sim(embed(image(e)), embed(reference image)) with respect to each
  word's prompt embeddings e, back-propagated through the last ``last_k`` denoising steps only
  (the earlier steps run without a graph, so memory does not grow with the step count). The
  similarity is maximal at the prompt itself, where its gradient vanishes, so token saliency is
  measured against a baseline: the empty prompt's embeddings at the same positions.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..embed.similarity import pairwise_similarity

PIXEL_METHODS = ("gradient", "smoothgrad", "integrated_gradients")
TOKEN_METHODS = ("gradient", "smoothgrad", "integrated_gradients")
BASELINES = ("black", "white", "blur")


def _baseline(image: torch.Tensor, baseline: Union[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        if baseline.shape != image.shape:
            raise ValueError(f"baseline must have shape {tuple(image.shape)}, got {tuple(baseline.shape)}")
        return baseline.to(image)
    if baseline == "black":
        return torch.zeros_like(image)
    if baseline == "white":
        return torch.ones_like(image)
    if baseline == "blur":
        return F.avg_pool2d(image, 9, stride=1, padding=4, count_include_pad=False)
    raise ValueError(f"baseline must be one of {BASELINES} or a tensor, got {baseline!r}")


def pixel_saliency(embedder, image: np.ndarray, target: np.ndarray, *, method: str = "integrated_gradients",
                   similarity: str = "cosine", baseline: Union[str, torch.Tensor] = "black", n_samples: int = 16,
                   noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Saliency of ``image`` for its similarity to ``target`` (e.g. the image of one word alone).

    Args:
        embedder: an embedder with ``embed_tensor``.
        image, target: uint8 (H, W, 3).
        method: "gradient", "smoothgrad" (mean gradient over ``n_samples`` copies with Gaussian
            noise of std ``noise``) or "integrated_gradients" (``n_samples`` midpoint steps on the
            straight path from ``baseline``; attributions sum to f(image) - f(baseline)).
        baseline: "black", "white", "blur" or a (1, 3, H, W) tensor in [0, 1] (IG only).

    Returns:
        (saliency (H, W): |gradient| summed over channels, or IG attributions summed over channels;
        per-channel attributions (3, H, W)).
    """
    if method not in PIXEL_METHODS:
        raise ValueError(f"method must be one of {PIXEL_METHODS}, got {method!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        goal = embedder.embed_tensor(torch.from_numpy(np.asarray(target)).permute(2, 0, 1)[None].float() / 255.0)

    def grad_at(points: torch.Tensor) -> torch.Tensor:
        points = points.detach().requires_grad_(True)
        pairwise_similarity(embedder.embed_tensor(points), goal, similarity).sum().backward()
        return points.grad

    if method == "gradient":
        per_channel = grad_at(x)[0]
        return per_channel.abs().sum(0).numpy(), per_channel.numpy()
    if method == "smoothgrad":
        generator = torch.Generator().manual_seed(seed)
        grads = torch.zeros_like(x)
        for _ in range(n_samples):
            grads += grad_at(x + noise * torch.randn(x.shape, generator=generator))
        per_channel = (grads / n_samples)[0]
        return per_channel.abs().sum(0).numpy(), per_channel.numpy()
    base = _baseline(x, baseline)
    alphas = (torch.arange(n_samples, dtype=torch.float32) + 0.5) / n_samples
    grads = torch.zeros_like(x)
    for alpha in alphas:
        grads += grad_at(base + alpha * (x - base))
    per_channel = ((x - base) * grads / n_samples)[0]
    return per_channel.sum(0).numpy(), per_channel.numpy()


def denoise(pipe, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor, *, seed: int,
            num_inference_steps: int, guidance_scale: float, last_k: int, height: int, width: int) -> torch.Tensor:
    """The Stable Diffusion sampling loop from public components, with a graph through the last
    ``last_k`` steps and the VAE decoder only. Returns images (1, 3, H, W) in [0, 1]."""
    scheduler = pipe.scheduler
    unet = pipe.unet
    device = next(unet.parameters()).device
    scheduler.set_timesteps(num_inference_steps, device=device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    scale = getattr(pipe, "vae_scale_factor", 8)
    shape = (1, unet.config.in_channels, height // scale, width // scale)
    latents = torch.randn(shape, generator=generator, device=device, dtype=prompt_embeds.dtype)
    latents = latents * scheduler.init_noise_sigma
    context = torch.cat([negative_embeds, prompt_embeds])
    steps = scheduler.timesteps
    for index, t in enumerate(steps):
        with torch.set_grad_enabled(index >= len(steps) - last_k):
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            output = unet(model_input, t, encoder_hidden_states=context).sample  # epsilon or v: step() knows
            uncond, cond = output.chunk(2)
            latents = scheduler.step(uncond + guidance_scale * (cond - uncond), t, latents).prev_sample
    decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return (decoded / 2 + 0.5).clamp(0, 1)


def token_saliency(adapter, prompt: str, embedder, *, seed: int = 0, method: str = "integrated_gradients",
                   similarity: str = "cosine", last_k: int = 2, n_samples: int = 8, noise: float = 0.05,
                   reference: Optional[torch.Tensor] = None) -> dict:
    """Per-word saliency of the image's similarity to the full prompt's image.

    f(e) = sim(embed(image(e)), embed(reference)), reference = the image of the full prompt (same
    seed). With e0 the empty prompt's embeddings at the same positions and d = e - e0:
    "gradient": d . grad f(e0) per word (first-order change from the empty prompt);
    "smoothgrad": d . mean grad f over n copies of e0 + alpha d with noise (alpha ~ U(0, 1));
    "integrated_gradients": d . mean_alpha grad f(e0 + alpha d) (midpoint rule, ``n_samples``
    steps); attributions sum to about f(e) - f(e0).

    Returns:
        dict with ``words``, ``values`` (n_words,), ``f_prompt``, ``f_baseline``.
    """
    if method not in TOKEN_METHODS:
        raise ValueError(f"method must be one of {TOKEN_METHODS}, got {method!r}")
    if last_k < 1 or last_k > adapter.num_inference_steps:
        raise ValueError(f"last_k must be in [1, {adapter.num_inference_steps}], got {last_k}")
    words = adapter.words(prompt)
    spans = adapter.word_token_spans(prompt)
    pipe = adapter.pipe
    with torch.no_grad():
        full = adapter.encode([prompt])
        empty = adapter.encode([""])
    baseline = full.clone()
    for start, end in spans:
        baseline[:, start:end] = empty[:, start:end]
    kwargs = dict(seed=seed, num_inference_steps=adapter.num_inference_steps, guidance_scale=adapter.guidance_scale,
                  last_k=last_k, height=adapter.height, width=adapter.width)
    with torch.no_grad():
        if reference is None:
            reference = denoise(pipe, full, empty, **kwargs)
        goal = embedder.embed_tensor(reference)

    modules = [pipe.unet, pipe.vae]
    requires = [[p.requires_grad for p in m.parameters()] for m in modules]
    for module in modules:  # gradients flow to the prompt embeddings only
        module.requires_grad_(False)

    def value_and_grad(embeds: torch.Tensor):
        embeds = embeds.detach().requires_grad_(True)
        image = denoise(pipe, embeds, empty, **kwargs)
        value = pairwise_similarity(embedder.embed_tensor(image), goal, similarity).sum()
        value.backward()
        return value.item(), embeds.grad

    try:
        delta = full - baseline
        if method == "gradient":
            points = [baseline]
        elif method == "integrated_gradients":
            points = [baseline + (i + 0.5) / n_samples * delta for i in range(n_samples)]
        else:
            generator = torch.Generator().manual_seed(seed)
            points = [baseline + torch.rand((), generator=generator) * delta
                      + noise * full.std() * torch.randn(full.shape, generator=generator) for _ in range(n_samples)]
        grads = torch.zeros_like(full)
        for point in points:
            grads += value_and_grad(point)[1]
        grads /= len(points)
        contribution = (delta * grads)[0].sum(-1)  # (L,)
        values = np.array([float(contribution[start:end].sum()) for start, end in spans])
        with torch.no_grad():
            full_image = denoise(pipe, full, empty, **kwargs)
            f_prompt = float(pairwise_similarity(embedder.embed_tensor(full_image), goal, similarity))
            base_image = denoise(pipe, baseline, empty, **kwargs)
            f_base = float(pairwise_similarity(embedder.embed_tensor(base_image), goal, similarity))
    finally:
        for module, flags in zip(modules, requires):
            for parameter, flag in zip(module.parameters(), flags):
                parameter.requires_grad_(flag)
    return dict(words=words, values=values, f_prompt=f_prompt, f_baseline=f_base, method=method, last_k=last_k)
