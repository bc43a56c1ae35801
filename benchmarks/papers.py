"""The papers' own evaluations, re-run on the shapes world where the truth is exact.

Usage: python -m benchmarks.papers [--parts gupta,smile,imacs] [--captions 50] [--tasks 80] [--smile-tasks 8]
                                  [--bootstrap 2000] [--name NAME]

Parts, each written to benchmarks/results/papers_<part>.{json,md} (with --name or other settings, to
runs/benchmarks/):

- gupta: Gupta & Kanoria's evaluation (percent of ranks aligned, RMSE against ground-truth
  importance, both normalised to sum to 1) of exact Shapley and LIME, on ten prompts with their ten
  prompts' structure transposed to the shapes vocabulary and on ``--captions`` held-out captions.
  Their ground truth is human-judged importance; here it is exact: the Shapley values of the
  *checker game*, v(S) = attributes of the full caption (colour, count, shape, size, position,
  background) the world's checker reads in the image generated from coalition S (mean over the
  image seeds), negative values set to 0, normalised to sum to 1. The explainers' own game is the
  default one (-L2 between EfficientNet embeddings); both share every image through the cache.
- smile: SMILE's evaluation (Dehghani et al.) on three editing families (see ``smile_part``).
- imacs: I2AM's model-level validation of IMACS (Park & Jang, ICLR 2025) on a ladder of
  image-to-image models (see ``imacs_part``).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from ._common import chosen_parts, machine, write

PARTS = ("gupta", "smile", "imacs")

# Gupta & Kanoria's ten prompts and the same structure in the shapes vocabulary (filler words where
# theirs has an article or a preposition; held-out colour-shape pairs where a colour names a shape)
TEN = (
    ("a flower lamp", "a yellow circle"),
    ("a lamp with flowers", "a circle and square"),
    ("a dog wearing hat", "a big purple square"),
    ("a Spanish flag", "a orange triangle"),
    ("books and coffee", "circle and triangle"),
    ("Girls watching movies", "small yellow circle"),
    ("a cat's house", "a purple square"),
    ("a map without land", "a triangle and circle"),
    ("ancient egyptian airpods", "big orange triangle"),
    ("astronauts at parties", "square and circle"),
)
PUBLISHED = dict(model="Stable Diffusion 1.4, CLIP image similarity, 10 prompts", shapley_ranks_aligned=0.64,
                 shapley_rmse=0.22)
CHECKED = ("colour", "count", "shape", "size", "position", "background_ok")


def checker_values(images: np.ndarray, caption: str) -> np.ndarray:
    """(n, K) attributes of ``caption`` the checker reads right in each coalition's image (n, K, H, W, 3)."""
    from diffexplain_shapes import check

    out = np.zeros(images.shape[:2])
    for i in range(images.shape[0]):
        for k in range(images.shape[1]):
            verdict = check(images[i, k], caption)
            out[i, k] = sum(getattr(verdict, a) is True for a in CHECKED)
    return out


def gupta_part(args) -> tuple[dict, str]:
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import build_embedder
    from diffexplain.explain.methods import METHODS, default_budget
    from diffexplain.explain.prompt_game import PromptGame
    from diffexplain.explain.settings import ExplainSettings
    from diffexplain.explain.shapley import shapley_from_table
    from diffexplain.metrics import ranks_aligned, rmse_normalised, roc_auc, sum_to_one
    from diffexplain.metrics.functional import all_masks
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    from .word_attribution import captions

    adapter = TextToImageAdapter(load_pipeline("shapes"))
    settings = ExplainSettings(seeds=2)
    embedder = build_embedder(settings, adapter)
    cache = GenerationCache(args.cache)
    sets = {"ten": [ours for _, ours in TEN],
            "heldout": [s.caption for s in captions(args.captions, 5, 8, seed=2024)]}  # word_attribution's draw
    start = time.perf_counter()
    rows: dict[str, list[dict]] = {name: [] for name in sets}
    for name, prompts in sets.items():
        for number, prompt in enumerate(prompts):
            game = PromptGame(adapter, prompt, settings, embedder=embedder, cache=cache)
            d = game.n_players
            masks = all_masks(d)
            shapley = shapley_from_table(game(masks), d).mean(axis=1)
            truth = shapley_from_table(checker_values(game.images(masks), prompt), d).mean(axis=1)
            truth = sum_to_one(np.clip(truth, 0, None))  # zeros where the checker reads nothing in any image
            lime = [METHODS["lime"]().explain(game, budget=default_budget("lime", d), seed=s).values for s in range(4)]
            row = dict(prompt=prompt, words=list(game.feature_names), truth=truth.tolist(), shapley=shapley.tolist(),
                       lime=[v.tolist() for v in lime])
            for method, estimates in (("shapley", [shapley]), ("lime", lime)):
                scored = [sum_to_one(np.clip(v, 0, None)) for v in estimates]
                row[method + "_ranks_aligned"] = float(np.mean([ranks_aligned(v, truth) for v in scored]))
                row[method + "_ranks_aligned_ties"] = float(np.mean([ranks_aligned(v, truth, ties="range")
                                                                     for v in scored]))
                row[method + "_rmse"] = float(np.mean([rmse_normalised(v, truth) for v in scored]))
                row[method + "_rmse_published"] = float(np.mean([rmse_normalised(v, truth, mean=False)
                                                                 for v in scored]))
                relevant = truth > 0
                row[method + "_auc_vs_truth"] = (float(np.mean([roc_auc(v, relevant) for v in estimates]))
                                                 if 0 < relevant.sum() < d else float("nan"))
            row["has_truth"] = bool(truth.sum() > 0)
            rows[name].append(row)
            print(f"{name} {number + 1}/{len(prompts)} {prompt!r} ({time.perf_counter() - start:.0f} s)", flush=True)
    keys = ("ranks_aligned", "ranks_aligned_ties", "rmse", "rmse_published", "auc_vs_truth")
    summary = {name: {f"{m}_{k}": float(np.nanmean([r[f"{m}_{k}"] for r in rows[name] if r["has_truth"]]))
                      for m in ("shapley", "lime") for k in keys} for name in sets}
    without = {name: [r["prompt"] for r in rows[name] if not r["has_truth"]] for name in sets}
    payload = dict(published=PUBLISHED, transposed=[dict(theirs=t, ours=o) for t, o in TEN], summary=summary,
                   without_truth=without,
                   rows=rows, n_heldout=args.captions, seeds=2, wall_s=round(time.perf_counter() - start, 1),
                   machine=machine())
    lines = ["# Gupta & Kanoria's evaluation on the shapes world", "",
             "Percent of ranks aligned and RMSE against ground-truth importance, both normalised to sum to 1 "
             "(negative values set to 0 first). Ground truth: exact Shapley values of the checker game (the "
             "caption's attributes the world's checker reads in each coalition's image), 2 image seeds. "
             "RMSE is given in the paper's formula (sqrt of the mean squared error) and in its tables' "
             "arithmetic (sqrt of the sum: their 0.22 is of this kind). Ranks aligned: tied truth values share "
             "the smallest rank, as in the paper; \"ties\" asks no order inside a tie (fillers worth 0). "
             "LIME: 4 sampler seeds, budget 128 (every coalition up to 7 words). Left out of the means, having "
             "no truth (the checker reads none of the caption in any coalition's image): "
             + (", ".join(repr(p) for ps in without.values() for p in ps) or "none") + ".", "",
             "| setting | method | ranks aligned | ranks aligned (ties) | RMSE (formula) | RMSE (tables) | "
             "AUC vs truth > 0 |", "|---|---|---|---|---|---|---|",
             f"| paper: {PUBLISHED['model']} | exact Shapley | {PUBLISHED['shapley_ranks_aligned']:.0%} | - | - | "
             f"{PUBLISHED['shapley_rmse']:.2f} | - |"]
    for name, label in (("ten", "shapes: their ten prompts' structure"),
                        ("heldout", f"shapes: {args.captions - len(without['heldout'])} held-out captions, "
                                    "5-8 words")):
        for method in ("shapley", "lime"):
            s = summary[name]
            lines.append(f"| {label} | {'exact Shapley' if method == 'shapley' else 'LIME'} | "
                         f"{s[method + '_ranks_aligned']:.0%} | {s[method + '_ranks_aligned_ties']:.0%} | "
                         f"{s[method + '_rmse']:.3f} | {s[method + '_rmse_published']:.3f} | "
                         f"{s[method + '_auc_vs_truth']:.3f} |")
    lines += ["", "## The ten prompts", "", "| theirs | ours | words | truth | exact Shapley (normalised) | "
              "ranks aligned | RMSE (tables) |", "|---|---|---|---|---|---|---|"]
    for (theirs, _), row in zip(TEN, rows["ten"]):
        if not row["has_truth"]:
            lines.append(f"| {theirs} | {row['prompt']} | {' / '.join(row['words'])} | no truth | - | - | - |")
            continue
        shap_norm = sum_to_one(np.clip(np.array(row["shapley"]), 0, None))
        lines.append(f"| {theirs} | {row['prompt']} | {' / '.join(row['words'])} | "
                     f"{', '.join(f'{t:.2f}' for t in row['truth'])} | {', '.join(f'{v:.2f}' for v in shap_norm)} | "
                     f"{row['shapley_ranks_aligned']:.0%} | {row['shapley_rmse_published']:.2f} |")
    return payload, "\n".join(lines + [""])


# ---------------------------------------------------------------------------------------------- SMILE
SMILE_BUDGET = 64  # the SMILE code's N
SMILE_RUNS = 3  # repeated runs (image seed and mask draw r) for consistency


def _variant(text: str, polite: bool) -> str:
    """A meaning-preserving variant: SMILE's "please" for an instruction, a caption prefix for a caption
    (the first word(s) taken away where the text already has one)."""
    words = text.split()
    if polite:
        return " ".join(words[1:]) if words[0] == "please" else "please " + text
    for prefix in (("there", "is"), ("an", "image", "of"), ("a", "picture", "of")):
        if tuple(words[:len(prefix)]) == prefix:
            return " ".join(words[len(prefix):])
    return "there is " + text


def smile_tasks(family: str, n: int):
    """(adapter, text, relevance, polite) for ``n`` held-out tasks of one editing family."""
    from diffusers import StableDiffusionImg2ImgPipeline

    from diffexplain.models.edit_adapter import EditAdapter
    from diffexplain.models.loading import load_pipeline
    from diffexplain_shapes import pipelines as shapes
    from diffexplain_shapes import sample_scene
    from diffexplain_shapes.edits import inpainted_relevance, sample_edit
    from diffexplain_shapes.tasks import box_mask

    text2image, edit = shapes.defaults("text2image"), shapes.defaults("instruct_pix2pix")
    rng = np.random.default_rng(8080)
    out = []
    if family == "instruct_pix2pix":
        pipe = load_pipeline("instruct_pix2pix")
        while len(out) < n:
            e = sample_edit(rng, split="heldout")
            if 0 < e.relevance.sum() < len(e.words) <= 8:
                adapter = EditAdapter(pipe, image=e.source.render(), num_inference_steps=text2image.num_inference_steps,
                                      guidance_scale=edit.guidance_scale)
                out.append((adapter, e.instruction, e.relevance, True))
    elif family == "img2img_turbo":  # the text2image weights at 4 steps, strength 0.75: ~3 denoising steps
        pipe = StableDiffusionImg2ImgPipeline(**load_pipeline("shapes").components)
        while len(out) < n:
            e = sample_edit(rng, split="heldout")
            target = e.target
            if 0 < target.relevance.sum() < len(target.words) <= 8:
                out.append((EditAdapter(pipe, image=e.source.render(), strength=0.75, num_inference_steps=4,
                                        guidance_scale=text2image.guidance_scale), target.caption,
                            target.relevance, False))
    elif family == "inpainting":
        pipe = load_pipeline("inpaint")
        while len(out) < n:
            scene = sample_scene(rng, split="heldout")
            if len(scene.words) > 8:
                continue
            index = int(rng.integers(len(scene.objects)))
            relevance = inpainted_relevance(scene, index)
            if 0 < relevance.sum() < len(scene.words):
                out.append((EditAdapter(pipe, image=scene.render(), mask=box_mask(scene, index),
                                        num_inference_steps=text2image.num_inference_steps,
                                        guidance_scale=edit.guidance_scale, composite=True),
                            scene.caption, relevance, False))
    else:
        raise ValueError(f"family must be instruct_pix2pix, img2img_turbo or inpainting, got {family!r}")
    return out


def smile_part(args) -> tuple[dict, str]:
    """SMILE's four measures (Dehghani et al., 2025) with its definitions, on three editing families:
    accuracy = ROC-AUC of the attributions against the words' binary relevance; fidelity = the
    surrogate's weighted R^2; stability = Ruzicka similarity between the attributions of the text and
    of a meaning-preserving variant (SMILE's "please" before an instruction; a caption prefix such as
    "there is" for captions), over the words both share; consistency = each word's coefficient of
    variation over R = 3 runs with different seeds (image seed and mask draw). SMILE's setting: N = 64
    Bernoulli(0.5) masks, Wasserstein response, word mover's kernel; EfficientNet-lite0 features in
    place of DINOv2 (no DINOv2 weights here), one image seed per run as in the SMILE code."""
    from diffexplain.cache import GenerationCache
    from diffexplain.embed import make_embedder
    from diffexplain.explain.api import explain_prompt
    from diffexplain.metrics import consistency, roc_auc, stability

    embedder = make_embedder("efficientnet")
    cache = GenerationCache(args.smile_cache)
    start = time.perf_counter()
    families = {}
    for family in ("instruct_pix2pix", "img2img_turbo", "inpainting"):
        rows = []
        for number, (adapter, text, relevance, polite) in enumerate(smile_tasks(family, args.smile_tasks)):
            common = dict(method="smile", budget=SMILE_BUDGET, similarity="wasserstein", embedder=embedder,
                          cache=cache)
            runs = [explain_prompt(adapter, text, seeds=[r], sampler_seed=r, **common) for r in range(SMILE_RUNS)]
            variant = explain_prompt(adapter, _variant(text, polite), seeds=[0], sampler_seed=0, **common)
            spread = consistency(np.stack([e.values for e in runs]))
            rows.append(dict(text=text, variant=_variant(text, polite), words=list(runs[0].features),
                             relevance=relevance.tolist(), values=[e.values.tolist() for e in runs],
                             accuracy=float(np.nanmean([roc_auc(e.values, relevance) for e in runs])),
                             fidelity=float(np.mean([e.info["fidelity_r2"] for e in runs])),
                             stability=float(stability(runs[0], variant)),
                             cv=spread["cv"].tolist(), std=spread["std"].tolist()))
            print(f"smile {family} {number + 1}/{args.smile_tasks} ({time.perf_counter() - start:.0f} s)", flush=True)
        cvs = np.concatenate([np.asarray(r["cv"]) for r in rows])
        families[family] = dict(
            rows=rows, accuracy=float(np.nanmean([r["accuracy"] for r in rows])),
            fidelity=float(np.mean([r["fidelity"] for r in rows])),
            stability=float(np.mean([r["stability"] for r in rows])),
            consistency_median_cv=float(np.median(cvs[np.isfinite(cvs)])),
            consistency_mean_std=float(np.mean(np.concatenate([r["std"] for r in rows]))))
    payload = dict(families=families, budget=SMILE_BUDGET, runs=SMILE_RUNS, tasks=args.smile_tasks,
                   embedder=embedder.name, wall_s=round(time.perf_counter() - start, 1), machine=machine())
    lines = ["# SMILE's evaluation on three shapes editing families", "",
             f"{args.smile_tasks} held-out tasks a family; SMILE with N = {SMILE_BUDGET} masks, Wasserstein response, "
             f"word mover's kernel, {embedder.name} features (DINOv2 in the paper), one image seed a run. Accuracy: "
             "ROC-AUC against binary relevance (instructions: the edit's content words; img2img: the target "
             "caption's content words; inpainting: the masked object's colour, shape and size words). Fidelity: "
             "the surrogate's weighted R^2. Stability: Ruzicka similarity between the text's attributions and a "
             "meaning-preserving variant's (\"please\" before an instruction, \"there is\" before a caption), over "
             f"shared words. Consistency: coefficient of variation of each word's attribution over {SMILE_RUNS} runs "
             "(image seed and mask draw), median over words; lower is more consistent.", "",
             "| family (the paper's model) | accuracy (AUC) | fidelity (weighted R^2) | stability (Ruzicka) | "
             "consistency (median CV) |", "|---|---|---|---|---|"]
    names = {"instruct_pix2pix": "InstructPix2Pix (Instruct-Pix2Pix)",
             "img2img_turbo": "img2img, 4 steps, strength 0.75 (Img2Img-Turbo)",
             "inpainting": "inpainting (Diffusers-Inpaint)"}
    for family, f in families.items():
        lines.append(f"| {names[family]} | {f['accuracy']:.3f} | {f['fidelity']:.3f} | {f['stability']:.3f} | "
                     f"{f['consistency_median_cv']:.2f} |")
    return payload, "\n".join(lines + [""])


# ---------------------------------------------------------------------------------------------- IMACS
# Earlier training states of the shipped image-to-image models: (name, commit, folder at that commit)
CHECKPOINTS = {
    "insertion": (("Paint-by-Example, step 4,000", "0865de4"), ("Paint-by-Example, step 5,500", "03eef13"),
                  ("Paint-by-Example, step 7,000", "15378bd"),
                  ("Paint-by-Example, step 8,200, before the VAE decoder fix", "6a43565")),
    "inpainting": (("inpainting, step 5,000, before the VAE decoder fix", "cd02101"),),
}
OLD_FOLDER = {"insertion": "src/diffexplain/models/weights/paint_by_example",
              "inpainting": "src/diffexplain/models/weights/inpaint"}
LADDER_DIR = "runs/ladder"


def _checkout(kind: str, commit: str) -> str:
    """The model folder of ``kind`` as committed at ``commit``, extracted once under runs/ladder."""
    import subprocess
    from pathlib import Path

    dest = Path(LADDER_DIR) / f"{kind}_{commit}"
    if not (dest / "model_index.json").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        folder = OLD_FOLDER[kind]
        archive = subprocess.run(["git", "archive", commit, folder], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest), f"--strip-components={folder.count('/') + 1}"], input=archive,
                       check=True)
    return str(dest)


def _damaged(pipe, kind: str, amount: float):
    """A copy of ``pipe`` whose conditioning pathway is damaged: the reference encoder's output
    projection (insertion) or the text encoder's last MLP (inpainting) mixed with Gaussian noise of
    the weights' own scale, ``amount`` in [0, 1] (seeded)."""
    import copy

    pipe = copy.copy(pipe)
    if kind == "insertion":
        pipe.image_encoder = copy.deepcopy(pipe.image_encoder)
        layer = pipe.image_encoder.proj_out
    else:
        pipe.text_encoder = copy.deepcopy(pipe.text_encoder)
        layer = pipe.text_encoder.text_model.encoder.layers[-1].mlp.fc2 if hasattr(pipe.text_encoder, "text_model") \
            else pipe.text_encoder.encoder.layers[-1].mlp.fc2
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for weight in (layer.weight, layer.bias):
            noise = torch.randn(weight.shape, generator=generator) * weight.std()
            weight.mul_(1 - amount).add_(amount * noise)
    return pipe


def ladder(kind: str) -> list[tuple[str, object, dict]]:
    """(name, pipeline, sampler overrides) for the ladder of ``kind`` ("insertion" or "inpainting")."""
    from diffexplain.models.loading import load_pipeline

    shipped = load_pipeline("paint_by_example" if kind == "insertion" else "inpaint")
    label = "Paint-by-Example" if kind == "insertion" else "inpainting"
    models = [(f"{label}, shipped", shipped, {})]
    models += [(name, load_pipeline(_checkout(kind, commit)), {}) for name, commit in CHECKPOINTS[kind]]
    models += [(f"{label}, shipped, 5 steps", shipped, dict(num_inference_steps=5)),
               (f"{label}, shipped, 2 steps", shipped, dict(num_inference_steps=2)),
               (f"{label}, shipped, guidance 1.5", shipped, dict(guidance_scale=1.5)),
               (f"{label}, conditioning damaged 50%", _damaged(shipped, kind, 0.5), {}),
               (f"{label}, conditioning damaged 100%", _damaged(shipped, kind, 1.0), {})]
    return models


def ladder_tasks(kind: str, n: int, draw: int) -> list:
    """(scene, object index, box) of ``n`` held-out tasks."""
    from diffexplain_shapes import sample_scene
    from diffexplain_shapes.tasks import box_mask

    rng = np.random.default_rng(draw)
    out = []
    for _ in range(n):
        scene = sample_scene(rng, split="heldout")
        index = int(rng.integers(len(scene.objects)))
        out.append((scene, index, box_mask(scene, index)))
    return out


def run_task(kind: str, pipe, overrides: dict, task, seed: int) -> dict:
    """One model on one task: the pasted result, its quality against the exact target render and its IMACS."""
    from diffexplain.attention import record_prompt
    from diffexplain.image2image.i2am import i2am_paint_by_example
    from diffexplain.metrics import imacs
    from diffexplain.models.edit_adapter import EditAdapter, PaintByExampleAdapter
    from diffexplain_shapes import check
    from diffexplain_shapes import pipelines as shapes
    from diffexplain_shapes.edits import inpainted_relevance
    from diffexplain_shapes.tasks import reference_crop, reference_object_mask

    scene, index, box = task
    target = scene.render()
    if kind == "insertion":
        d = shapes.defaults("paint_by_example")
        sampler = dict(dict(num_inference_steps=d.num_inference_steps, guidance_scale=d.guidance_scale), **overrides)
        adapter = PaintByExampleAdapter(pipe, image=target, mask=box, reference=reference_crop(scene, index), **sampler)
        result = i2am_paint_by_example(adapter, seed=seed, reference_mask=reference_object_mask(scene, index))
        image = result.image
        scores = dict(imacs_r2g=result.imacs_r2g, imacs_g2r=result.imacs_g2r,
                      imacs_guidance=np.nan if result.imacs_guidance is None else result.imacs_guidance)
    else:
        d = shapes.defaults("inpaint")
        sampler = dict(dict(num_inference_steps=d.num_inference_steps, guidance_scale=d.guidance_scale), **overrides)
        adapter = EditAdapter(pipe, image=target, mask=box, **sampler)
        image, maps = record_prompt(adapter, scene.caption, seed=seed)
        relevant = np.flatnonzero(inpainted_relevance(scene, index))
        layers = maps.layers_at_least(d.attention_min_grid)
        heat = torch.stack([maps.word_heatmap(int(w), layers=layers) for w in relevant]).mean(0).numpy()
        scores = dict(imacs_words=imacs(heat, box, 3.0))
    pasted = adapter.paste(np.asarray(image)[None])[0]
    error = np.abs(pasted.astype(np.float64) - target.astype(np.float64)).mean(axis=-1)[box].mean() / 255
    return dict(success=bool(check(pasted, scene.caption).edit_ok), pixel_error=float(error), pasted=pasted, **scores)


def _feature_space(tasks: list, embedder) -> tuple:
    """(images -> 16-d features, the targets' features): EfficientNet features of images (n, H, W, 3)
    projected on the first 16 principal axes of the tasks' exact target renders, where a Frechet
    distance over 80 images is defined."""
    targets = embedder.embed(np.stack([t[0].render() for t in tasks]))
    centre = targets.mean(0)
    basis = np.linalg.svd(targets - centre, full_matrices=False)[2][:16]

    def project(images: np.ndarray) -> np.ndarray:
        return (embedder.embed(images) - centre) @ basis.T

    return project, (targets - centre) @ basis.T


def _model_summary(model: dict, target_features: np.ndarray, pick: np.ndarray) -> dict:
    """A ladder model's quality and mean IMACS on the tasks ``pick`` (indices, repeats allowed)."""
    from diffexplain.metrics import frechet_distance

    rows = [model["rows"][i] for i in pick]
    values = dict(success=float(np.mean([r["success"] for r in rows])),
                  pixel_error=float(np.mean([r["pixel_error"] for r in rows])),
                  frechet=frechet_distance(model["features"][pick], target_features[pick]))
    values.update({k: float(np.nanmean([r[k] for r in rows])) for k in rows[0] if k.startswith("imacs")})
    return values


QUALITY = {"success": 1.0, "pixel_error": -1.0, "frechet": -1.0}  # signs: + is a better model


def _ladder_correlation(models: list[dict], target_features: np.ndarray, key: str, quality: str,
                        pick: np.ndarray) -> float:
    from diffexplain.metrics import spearman

    rows = [_model_summary(m, target_features, pick) for m in models]
    return spearman([r[key] for r in rows], [QUALITY[quality] * r[quality] for r in rows])


def ladder_part(kind: str, draw: int, args, embedder) -> tuple[dict, list[str]]:
    """One ladder (``kind``): every model on the same tasks, its summary and the correlations."""
    import functools

    from diffexplain.metrics import bootstrap_ci

    start = time.perf_counter()
    tasks = ladder_tasks(kind, args.tasks, draw)
    project, target_features = _feature_space(tasks, embedder)
    models = []
    for name, pipe, overrides in ladder(kind):
        rows = [run_task(kind, pipe, overrides, task, seed=i) for i, task in enumerate(tasks)]
        features = project(np.stack([r.pop("pasted") for r in rows]))
        models.append(dict(name=name, overrides=overrides, rows=rows, features=features))
        print(f"imacs {kind} {name}: success {np.mean([r['success'] for r in rows]):.2f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    score_keys = [k for k in models[0]["rows"][0] if k.startswith("imacs")]
    everything = np.arange(len(tasks))
    table = [dict(name=m["name"], **_model_summary(m, target_features, everything)) for m in models]
    # over every model, and over the models that differ in their weights only (same sampler settings)
    groups = {"all": models, "weights": [m for m in models if not m["overrides"]]}
    correlations: dict = {name: {} for name in groups}
    for name, members in groups.items():
        for key in score_keys:
            for quality in QUALITY:
                rho = functools.partial(_ladder_correlation, members, target_features, key, quality)
                correlations[name][f"{key}~{quality}"] = dict(
                    rho=rho(everything), ci=bootstrap_ci(rho, len(tasks), n_resamples=args.bootstrap))
    result = dict(models=[dict(t, overrides=m["overrides"], rows=m["rows"], features=m["features"].tolist())
                          for t, m in zip(table, models)], target_features=target_features.tolist(),
                  correlations=correlations, tasks=len(tasks), draw=draw, wall_s=round(time.perf_counter() - start, 1))
    lines = [f"## {kind.capitalize()}: {len(models)} models, {len(tasks)} held-out tasks", "",
             "| model | success | masked pixel error | Frechet (EfficientNet, PCA-16) | "
             + " | ".join(score_keys) + " |", "|---|---|---|---|" + "---|" * len(score_keys)]
    for t in table:
        lines.append(f"| {t['name']} | {t['success']:.1%} | {t['pixel_error']:.3f} | {t['frechet']:.2f} | "
                     + " | ".join(f"{t[k]:.3f}" for k in score_keys) + " |")
    lines += ["", "Spearman's rho between mean IMACS and quality (signed so that + means higher IMACS, better "
              "model), 95% bootstrap CI over tasks; over every model, and over those that differ in their weights "
              f"only ({len(groups['weights'])}: the training states and the damaged ones, at the shipped sampler "
              "settings):", "",
              "| models | IMACS | success | lower pixel error | lower Frechet |", "|---|---|---|---|---|"]
    for name in groups:
        for key in score_keys:
            cells = [f"{correlations[name][f'{key}~{q}']['rho']:.2f} [{correlations[name][f'{key}~{q}']['ci'][0]:.2f}, "
                     f"{correlations[name][f'{key}~{q}']['ci'][1]:.2f}]" for q in QUALITY]
            lines.append(f"| {name} | {key} | " + " | ".join(cells) + " |")
    return result, lines + [""]


def debugging_part(args, embedder) -> tuple[dict, list[str]]:
    """I2AM's model-debugging claim: the shipped Paint-by-Example, a fine-tune of it with the
    attribution-consistency term and the same fine-tune without it (same batches, steps and
    learning rate), on the insertion ladder's tasks: does IMACS move, and does quality with it?"""
    from diffexplain.models.loading import load_pipeline

    with_term, without_term = args.finetunes.split(",")
    tasks = ladder_tasks("insertion", args.tasks, 9090)
    project, target_features = _feature_space(tasks, embedder)
    everything = np.arange(len(tasks))
    rows = []
    for name, model in (("shipped", "paint_by_example"), ("fine-tuned without the term (control)", without_term),
                        ("fine-tuned with the attribution-consistency term", with_term)):
        pipe = load_pipeline(model)
        results = [run_task("insertion", pipe, {}, task, seed=i) for i, task in enumerate(tasks)]
        features = project(np.stack([r.pop("pasted") for r in results]))
        rows.append(dict(name=name, model=model,
                         **_model_summary(dict(rows=results, features=features), target_features, everything)))
    keys = [k for k in rows[0] if k.startswith("imacs")]
    lines = ["## Model debugging: a fine-tune with the attribution-consistency term", "",
             "Paint-by-Example fine-tuned 300 steps (batch 16, learning rate 1e-4, the same batches) from the "
             "shipped model, with the term (weight 0.01, the paper's) and without it; the insertion ladder's tasks.",
             "", "| model | success | masked pixel error | Frechet (EfficientNet, PCA-16) | " + " | ".join(keys) + " |",
             "|---|---|---|---|" + "---|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['name']} | {r['success']:.1%} | {r['pixel_error']:.3f} | {r['frechet']:.2f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    return dict(models=rows), lines + [""]


def imacs_part(args) -> tuple[dict, str]:
    """I2AM's model-level validation of IMACS (Park & Jang, ICLR 2025: IMACS "correlates strongly with"
    FID and LPIPS across models) where quality is exact: a ladder of image-to-image models of differing
    quality on the same held-out tasks, each model's mean IMACS against its quality measured on the
    exact target render (success by the world's checker, masked pixel error, a Frechet distance on
    EfficientNet-lite0 features -- not Inception, so not FID -- after a PCA to 16 dimensions fitted on
    the target renders, as 80 images cannot fill a 1,280-dimensional covariance), and Spearman's rho
    between them over the models with a bootstrap CI (tasks resampled).

    Ladders: insertion (Paint-by-Example; IMACS of I2AM's reference-to-generated map, of the
    encoder's generated-to-reference rollout against the reference object, and of the guidance
    difference) and inpainting (IMACS of the masked object's words' cross-attention), each: the
    shipped model, its earlier training states, fewer steps, low guidance and a damaged conditioning
    pathway."""
    from diffexplain.embed import make_embedder

    embedder = make_embedder("efficientnet")
    start = time.perf_counter()
    out: dict = {}
    lines = ["# IMACS against quality across a ladder of models (I2AM's model-level claim)", "",
             " ".join(imacs_part.__doc__.split("\n\n")[0].split()), ""]
    for kind, draw in (("insertion", 9090), ("inpainting", 9191)):
        out[kind], more = ladder_part(kind, draw, args, embedder)
        lines += more
    if args.finetunes:
        out["debugging"], more = debugging_part(args, embedder)
        lines += more
    payload = dict(out, embedder=embedder.name, wall_s=round(time.perf_counter() - start, 1), machine=machine())
    return payload, "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--captions", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=80, help="insertion / inpainting tasks per model (imacs)")
    parser.add_argument("--smile-tasks", type=int, default=8, help="held-out tasks per editing family (smile)")
    parser.add_argument("--smile-cache", default="runs/papers_smile.sqlite")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (imacs)")
    parser.add_argument("--finetunes", default=None,
                        help="imacs: WITH,WITHOUT: exported Paint-by-Example fine-tunes with and without the "
                             "attribution-consistency term (training.train_edits --attribution-weight)")
    parser.add_argument("--cache", default="runs/estimators_cache.sqlite", help="shared with benchmarks.estimators")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    parts = chosen_parts(parser, args.parts, PARTS)
    torch.set_flush_denormal(True)
    canonical = args.name is None and args.captions == 50 and args.tasks == 80 and args.smile_tasks == 8
    for part in parts:
        payload, table = {"gupta": gupta_part, "smile": smile_part, "imacs": imacs_part}[part](args)
        write(f"{args.name or 'papers'}_{part}", payload, table, current=canonical)


if __name__ == "__main__":
    main()
