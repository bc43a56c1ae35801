"""Prompt-word attribution on the shapes world: accuracy against ground truth, sampled vs exact,
and overhead.

Usage: python -m benchmarks.word_attribution [--captions 50] [--seeds 2] [--embedder pixel]
       [--similarity neg_l2] [--parts accuracy,compare,ablation,overhead] [--methods shapley,smile]
       [--draws 4] [--explainer-seeds 4] [--caption-draw 2024] [--cache FILE] [--quick]

Each part writes benchmarks/results/word_attribution_<part>.{json,md} when every setting is at its
default (a cache file may be given: it changes wall times only); any other run, or one with
--name, writes to runs/benchmarks/ instead:
- accuracy: on held-out shapes captions of 5-8 words, per method, ROC-AUC of the attributions
  against binary word relevance (content = 1, filler = 0), precision@k (k = number of content
  words), generations used and wall time. All methods share one generation cache, so each
  method's "generations" column counts images it asked for, most served from the cache. A sampled
  method's AUC is averaged over ``--explainer-seeds`` seeds of its own draw (masks, permutations):
  one draw's AUC on 50 captions varies by about 0.025 (SMILE, 8 seeds), as much as the gaps
  between methods. Settings are chosen on another ``--caption-draw`` than the reported one.
- sampled vs exact: mean absolute error of normalised values (permutation, KernelSHAP, LIME,
  SMILE) against exact Shapley at budgets 2d, 4d and 8d, on prompts of 6-10 words, with values
  normalised to sum 1 and, as well, errors divided by the exact values' L1 norm. Each sampled
  estimator is run with ``--draws`` sampler seeds per prompt and its error averaged over them (the
  exact game has evaluated every coalition, so the extra draws cost no generations): one draw per
  prompt leaves the mean error of 8 prompts too noisy to compare with a 0.05 target.
- ablation: the model's own use of each word, judged without any embedder or explainer: each
  word of each accuracy caption is dropped alone (the exact text a coalition sends; exact Shapley
  has generated these images, so from its cache they are free) and the checker scores the image
  against the *full* caption. A word "breaks" an attribute when the full prompt's image has it
  right and the image without the word has it wrong. Reported per role and per filler word, with
  the ROC-AUC of the number of broken attributes against relevance: where the model breaks
  attributes without a filler, a faithful explainer must rank that filler high, so that AUC
  shows how much of the ground truth the model itself follows.
- overhead: the share of an explanation's wall time spent outside the pipeline call (split into
  embedding the images and everything else): KernelSHAP with the pixel embedder (the CLI default)
  and EfficientNet at 224 and 128, SMILE (text distances and bootstrap p-values on top) with
  EfficientNet at 128; and the generations of a re-run (must be 0).
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from diffexplain.cache import GenerationCache
from diffexplain.embed import make_embedder
from diffexplain.explain.api import explain_prompt
from diffexplain.explain.methods import default_budget
from diffexplain.explain.surrogate import SURROGATE_BUDGET
from diffexplain.metrics import precision_at_k, roc_auc
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain.models.loading import load_pipeline
from diffexplain_shapes import check, check_vocabulary, sample_scene
from diffexplain_shapes import pipelines as shapes

from ._common import drop_one_images, machine, write

DEFAULTS = shapes.defaults("text2image")  # sampler and attention settings the shipped model ships

METHODS = ("shapley", "permutation", "kernelshap", "lime", "smile")
PARTS = ("accuracy", "compare", "ablation", "overhead")
ATTRIBUTES = ("colour", "count", "shape", "size", "position", "background_ok")
REPORTED_DRAW = 2024  # the accuracy part's reported captions; settings are chosen on other draws


def captions(n: int, low: int, high: int, seed: int):
    """n held-out scenes with distinct captions of low..high words, at least one of them filler.

    Distinct: short held-out captions repeat often (the first 50 of 5-8 words drawn with seed
    2024 hold 37 distinct captions), and a repeated caption would count twice in every mean.
    """
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        scene = sample_scene(rng, split="heldout")
        if low <= len(scene.words) <= high and scene.relevance.min() == 0 and scene.caption not in seen:
            seen.add(scene.caption)
            out.append(scene)
    return out


def broken_attributes(adapter, scene, seeds, embedder, cache) -> np.ndarray:
    """Attributes each word's removal breaks, per seed: int array (n_words, K).

    The full caption's image and each image with one word dropped (the text a "drop" coalition
    sends, so exact Shapley's cache holds them) are read by the checker against the full caption;
    an attribute is broken when the full image has it right and the image without the word not.
    """
    d = len(scene.words)
    images = drop_one_images(adapter, scene.caption, seeds, embedder, cache)  # (d + 1, K, H, W, 3)
    out = np.zeros((d, len(seeds)), dtype=np.int64)
    for k in range(len(seeds)):
        full = check(images[0, k], scene.caption)
        right = [a for a in ATTRIBUTES if getattr(full, a) is True]
        for i in range(d):
            verdict = check(images[1 + i, k], scene.caption)
            out[i, k] = sum(getattr(verdict, a) is not True for a in right)
    return out


class TimedEmbedder:
    """Wraps an embedder and counts the seconds spent embedding images."""

    def __init__(self, embedder):
        self.inner = embedder
        self.name = embedder.name
        self.seconds = 0.0

    def embed(self, images):
        start = time.perf_counter()
        try:
            return self.inner.embed(images)
        finally:
            self.seconds += time.perf_counter() - start


class TimedAdapter(TextToImageAdapter):
    """Counts the seconds spent inside the pipeline."""

    generation_seconds = 0.0

    def _run(self, seeds, **inputs):
        start = time.perf_counter()
        try:
            return super()._run(seeds, **inputs)
        finally:
            self.generation_seconds += time.perf_counter() - start


def setup(args, parts, methods):
    """What the parts share: the pipeline, a timed adapter, the embedder, the cache and the captions."""
    torch.set_flush_denormal(True)
    pipe = load_pipeline(args.model)
    adapter = TimedAdapter(pipe, num_inference_steps=DEFAULTS.num_inference_steps,
                           guidance_scale=DEFAULTS.guidance_scale, batch_size=64, vocabulary_check=check_vocabulary)
    embedder = make_embedder(args.embedder, pipe=pipe, image_size=args.embedder_size,
                             image_side=max(adapter.height, adapter.width))
    cache = GenerationCache(args.cache)
    images_at_start = len(cache)  # a warm cache: wall times then exclude those images' generation
    common = dict(seeds=args.seeds, embedder=embedder, cache=cache, similarity=args.similarity,  # None: the default
                  perturbation=args.perturbation)

    scenes = captions(args.captions, 5, 8, seed=args.caption_draw)
    # the ablation's breaks are computed first: the accuracy part also scores without the fillers they show used
    breaks = ({scene.caption: broken_attributes(adapter, scene, list(range(args.seeds)), embedder, cache)
               for scene in scenes} if "ablation" in parts else {})
    max_compare_words = 8 if args.quick else args.max_compare_words
    compare = captions(args.compare_prompts, 6, max_compare_words, seed=77)
    return SimpleNamespace(pipe=pipe, adapter=adapter, embedder=embedder, cache=cache, images_at_start=images_at_start,
                           common=common, methods=methods, scenes=scenes, breaks=breaks, compare=compare,
                           max_compare_words=max_compare_words)


def accuracy_part(ctx, args) -> tuple[dict, list[str]]:
    """ROC-AUC and precision@k of every method against word relevance on the accuracy captions."""
    adapter, common, methods, scenes, breaks_by_scene = ctx.adapter, ctx.common, ctx.methods, ctx.scenes, ctx.breaks
    per_method = {m: dict(auc=[], auc_no_position=[], auc_no_used_fillers=[], precision=[], generations=0,
                          new_generations=0, wall_s=0.0, by_role={}, by_filler={}, auc_by_run={}) for m in methods}
    n_runs = {m: 1 if m == "shapley" else args.explainer_seeds for m in methods}
    for scene in scenes:
        # the model follows position words poorly (fidelity benchmark), so also score without them
        keep = np.array([w.role != "position" for w in scene.words])
        # with the ablation: also score without the fillers this caption's images show the model uses
        unused = (np.array([w.role != "filler" for w in scene.words])
                  | (breaks_by_scene[scene.caption].sum(axis=1) == 0)) if breaks_by_scene else None
        for method in methods:
            budget = (args.surrogate_budget if method in ("lime", "smile")
                      else default_budget(method, len(scene.words)))
            row = per_method[method]
            for run in range(n_runs[method]):  # explainer seeds: a sampled method's AUC varies with its draw
                start = time.perf_counter()
                e = explain_prompt(adapter, scene.caption, method=method, budget=budget, sampler_seed=run, **common)
                row["wall_s"] += time.perf_counter() - start
                row["generations"] += e.n_generations
                row["new_generations"] += e.n_generations - e.n_cached
                row["auc"].append(roc_auc(e.values, scene.relevance))
                row["auc_by_run"].setdefault(run, []).append(row["auc"][-1])
                row["auc_no_position"].append(roc_auc(e.values[keep], scene.relevance[keep]))
                if unused is not None:
                    row["auc_no_used_fillers"].append(roc_auc(e.values[unused], scene.relevance[unused]))
                row["precision"].append(precision_at_k(e.values, scene.relevance))
                share = e.values / max(float(np.abs(e.values).sum()), 1e-12)  # each word's signed share of sum |phi|
                content = e.values[scene.relevance == 1]
                for word, value, raw in zip(scene.words, share, e.values):
                    row["by_role"].setdefault(word.role, []).append(float(value))
                    if word.role == "filler":  # which fillers cost AUC: share, and content words it outranks
                        row["by_filler"].setdefault(word.text, []).append((float(value), float(np.mean(content < raw))))
    accuracy = {m: dict(auc=float(np.nanmean(r["auc"])), auc_min=float(np.nanmin(r["auc"])),
                        explainer_seeds=n_runs[m],
                        auc_by_explainer_seed=[float(np.nanmean(v)) for _, v in sorted(r["auc_by_run"].items())],
                        auc_without_position_words=float(np.nanmean(r["auc_no_position"])),
                        auc_without_used_fillers=(float(np.nanmean(r["auc_no_used_fillers"]))
                                                  if r["auc_no_used_fillers"] else None),
                        precision_at_k=float(np.mean(r["precision"])), generations=r["generations"] // n_runs[m],
                        new_generations=r["new_generations"], wall_s=round(r["wall_s"] / n_runs[m], 1),
                        share_by_role={k: float(np.mean(v)) for k, v in sorted(r["by_role"].items())},
                        by_filler_word={w: dict(n=len(v), share=float(np.mean([x[0] for x in v])),
                                                outranks_content=float(np.mean([x[1] for x in v])))
                                        for w, v in sorted(r["by_filler"].items())},
                        negative_content_share=float(np.mean([v < 0 for k, vs in r["by_role"].items()
                                                              if k != "filler" for v in vs])))
                for m, r in per_method.items()}
    roles = sorted({k for a in accuracy.values() for k in a["share_by_role"]})

    lines = []
    draw = "" if args.caption_draw == REPORTED_DRAW else f", caption draw {args.caption_draw}"
    lines += [f"Word attribution on {len(scenes)} distinct held-out shapes captions (5-8 words{draw}, "
              f"{args.seeds} seeds, embedder {ctx.embedder.name}; LIME / SMILE budget {args.surrogate_budget}, "
              f"KernelSHAP / permutation 4d; perturbation {args.perturbation})", "",
              f"A sampled method's figures are averaged over {args.explainer_seeds} seeds of its own draw (the "
              "next column: the AUC of each seed); images asked and wall time are per pass, images generated "
              "are all new images." + (f" The cache held {ctx.images_at_start} images at the start: wall times "
                                       "exclude their generation." if ctx.images_at_start else ""), "",
              "| method | AUC vs relevance | AUC per explainer seed | AUC without position words | min AUC | "
              "precision@k | images asked | images generated | wall s |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {m} | {a['auc']:.3f} | {', '.join(f'{v:.3f}' for v in a['auc_by_explainer_seed'])} | "
              f"{a['auc_without_position_words']:.3f} | {a['auc_min']:.2f} | "
              f"{a['precision_at_k']:.3f} | {a['generations']} | "
              f"{a['new_generations']} | {a['wall_s']} |" for m, a in accuracy.items()]
    if breaks_by_scene:
        lines += ["", "AUC without the fillers the model uses (on that caption, dropping the filler alone breaks "
                  "an attribute; see the ablation section): "
                  + ", ".join(f"{m} {a['auc_without_used_fillers']:.3f}" for m, a in accuracy.items()) + "."]
    lines += ["", "Mean signed share of sum |value| per word, by the word's role (the filler column should be "
              "near 0; 'content < 0' is the share of content words given a negative value):", "",
              "| method | " + " | ".join(roles) + " | content < 0 |", "|---|" + "---|" * (len(roles) + 1)]
    lines += [f"| {m} | " + " | ".join(f"{a['share_by_role'].get(k, float('nan')):+.3f}" for k in roles)
              + f" | {a['negative_content_share']:.1%} |" for m, a in accuracy.items()]
    fillers = sorted({w for a in accuracy.values() for w in a["by_filler_word"]})
    lines += ["", "Filler words: mean signed share, and the share of the caption's content words each one "
              "outranks (what AUC loses to it); n = occurrences:", "",
              "| method | " + " | ".join(fillers) + " |", "|---|" + "---|" * len(fillers)]
    lines += ["| n | " + " | ".join(str(next(iter(accuracy.values()))["by_filler_word"].get(w, {}).get("n", 0))
                                     for w in fillers) + " |"]
    lines += [f"| {m} | " + " | ".join(
        f"{a['by_filler_word'][w]['share']:+.3f} / {a['by_filler_word'][w]['outranks_content']:.0%}"
        if w in a["by_filler_word"] else "-" for w in fillers) + " |" for m, a in accuracy.items()]
    return dict(n_captions=len(scenes), caption_draw=args.caption_draw, surrogate_budget=args.surrogate_budget,
                explainer_seeds=args.explainer_seeds, accuracy=accuracy), lines


def compare_part(ctx, args) -> tuple[dict, list[str]]:
    """MAE of sampled methods against exact Shapley at 2d, 4d and 8d coalitions, on 6-10 word prompts."""
    adapter, common, methods, compare = ctx.adapter, ctx.common, ctx.methods, ctx.compare
    max_compare_words = ctx.max_compare_words
    # Two normalisations: to sum 1 (the reference's form; ill-conditioned when v(D) - v(empty) is
    # near 0, where "normalised" values reach +-2), and by the exact values' L1 norm (well-posed).
    sampled_methods = [m for m in ("permutation", "kernelshap", "lime", "smile") if m in methods]
    errors = {m: {f: [] for f in (2, 4, 8)} for m in sampled_methods}
    errors_l1 = {m: {f: [] for f in (2, 4, 8)} for m in errors}
    totals = []
    for scene in compare:
        exact_e = explain_prompt(adapter, scene.caption, method="shapley", **common)
        exact, raw = exact_e.normalised(), exact_e.values
        totals.append(float(raw.sum()))
        d = len(scene.words)
        for method in errors:
            for factor in (2, 4, 8):
                for draw in range(args.draws):
                    e = explain_prompt(adapter, scene.caption, method=method, budget=factor * d, sampler_seed=draw,
                                       **common)
                    errors[method][factor].append(float(np.abs(e.normalised() - exact).mean()))
                    errors_l1[method][factor].append(float(np.abs(e.values - raw).mean() / np.abs(raw).sum()))
    # per prompt, the mean over draws; then the mean over prompts and its standard error across prompts
    n_compare = len(totals)

    def summary(by_factor):
        out = {}
        for f, v in by_factor.items():
            per_prompt = np.array(v).reshape(n_compare, args.draws).mean(axis=1) if n_compare else np.array([np.nan])
            out[f"{f}d"] = float(per_prompt.mean())
            out[f"{f}d_se"] = float(per_prompt.std(ddof=1) / np.sqrt(n_compare)) if n_compare > 1 else float("nan")
        return out

    sampled = {m: summary(by) for m, by in errors.items()}
    sampled_l1 = {m: summary(by) for m, by in errors_l1.items()}

    lines = []
    lines += ["", f"## Sampled vs exact Shapley: MAE of normalised values ({len(compare)} prompts of "
              f"6-{max_compare_words} words, {args.draws} sampler seeds each; +- standard error across "
              "prompts)", "",
              "| method | 2d | 4d | 8d |", "|---|---|---|---|"]
    lines += [f"| {m} | " + " | ".join(f"{v[f]:.3f} +- {v[f + '_se']:.3f}" for f in ("2d", "4d", "8d")) + " |"
              for m, v in sampled.items()]
    lines += ["", "Same, each error divided by the exact values' L1 norm (sum |phi|) instead of their sum "
              "(v(D) - v(empty) of these prompts: " + ", ".join(f"{t:.3f}" for t in totals) + "):", "",
              "| method | 2d | 4d | 8d |", "|---|---|---|---|"]
    lines += [f"| {m} | " + " | ".join(f"{v[f]:.3f} +- {v[f + '_se']:.3f}" for f in ("2d", "4d", "8d")) + " |"
              for m, v in sampled_l1.items()]
    return dict(sampled_vs_exact_mae=sampled, sampled_vs_exact_mae_l1=sampled_l1, draws=args.draws,
                compare_prompts=[s.caption for s in compare], compare_totals=totals), lines


def ablation_part(ctx, args) -> tuple[dict, list[str]]:
    """How often dropping one word breaks an attribute the full caption's image has right (the checker)."""
    scenes, breaks_by_scene = ctx.scenes, ctx.breaks
    flat = [(word, n) for scene in scenes for word, row in zip(scene.words, breaks_by_scene[scene.caption])
            for n in row]
    by_role, by_filler = {}, {}
    for word, n in flat:
        by_role.setdefault(word.role, []).append(n)
        if word.role == "filler":
            by_filler.setdefault(word.text, []).append(n)

    def rates(v):
        return dict(n=len(v), breaks_any=float(np.mean(np.array(v) > 0)), mean_breaks=float(np.mean(v)))

    ablation = dict(auc_breaks_vs_relevance=roc_auc(np.array([n for _, n in flat], float),
                                                    np.array([w.relevance for w, _ in flat])),
                    by_role={r: rates(v) for r, v in sorted(by_role.items())},
                    by_filler_word={w: rates(v) for w, v in sorted(by_filler.items())})

    lines = []
    lines += ["", f"## Leave one word out, judged by the checker ({len(scenes)} captions, {args.seeds} seeds)", "",
              "How often dropping one word alone breaks an attribute that the full prompt's image has right "
              "(the checker reads the image against the full caption). ROC-AUC of the number of broken "
              f"attributes against relevance: {ablation['auc_breaks_vs_relevance']:.3f}.", "",
              "| role or filler word | n | breaks an attribute | mean attributes broken |", "|---|---|---|---|"]
    lines += [f"| {r} | {v['n']} | {v['breaks_any']:.1%} | {v['mean_breaks']:.2f} |"
              for r, v in ablation["by_role"].items()]
    lines += [f"| filler \"{w}\" | {v['n']} | {v['breaks_any']:.1%} | {v['mean_breaks']:.2f} |"
              for w, v in ablation["by_filler_word"].items()]
    return dict(n_captions=len(scenes), ablation=ablation), lines


def overhead_part(ctx, args) -> tuple[dict, list[str]]:
    """Share of an explanation's wall time outside the pipeline call, per method and embedder; a re-run's images."""
    adapter, pipe, embedder, scene = ctx.adapter, ctx.pipe, ctx.embedder, ctx.compare[0]
    overheads = {}
    cases = [("kernelshap", "pixel", None), ("kernelshap", "efficientnet", 224), ("kernelshap", "efficientnet", 128),
             ("smile", "pixel", None), ("smile", "efficientnet", 224),
             ("smile", "efficientnet", 128)]  # SMILE adds text distances and bootstrap p-values
    for method, name, size in cases:
        adapter.generation_seconds = 0.0
        timed = TimedEmbedder(make_embedder(name, pipe=pipe, image_size=size))
        start = time.perf_counter()
        explain_prompt(adapter, scene.caption, method=method, seeds=args.seeds, embedder=timed,
                       cache=GenerationCache())
        wall = time.perf_counter() - start
        share = 1 - adapter.generation_seconds / wall
        overheads[f"{method}, {timed.name}"] = dict(method=method, embedder=timed.name, overhead_share=share,
                                                    embedding_share=timed.seconds / wall,
                                                    other_share=share - timed.seconds / wall, wall_s=wall)
    fresh = GenerationCache()
    explain_prompt(adapter, scene.caption, method="kernelshap", seeds=args.seeds, embedder=embedder, cache=fresh)
    rerun = explain_prompt(adapter, scene.caption, method="kernelshap", seeds=args.seeds, embedder=embedder,
                           cache=fresh)
    rerun_new = rerun.n_generations - rerun.n_cached

    lines = []
    lines += ["", "## Non-generation overhead (each method at its default budget, fresh cache)", "",
              "| method, embedder | overhead | embedding | everything else | wall s |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {o['overhead_share']:.1%} | {o['embedding_share']:.1%} | {o['other_share']:.1%} | "
              f"{o['wall_s']:.1f} |" for n, o in overheads.items()]
    lines += ["", f"Re-run new generations: {rerun_new}.", ""]
    return dict(overhead=overheads, rerun_new_generations=rerun_new), lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--embedder", default="efficientnet", help="the library's default")
    parser.add_argument("--embedder-size", type=int, default=None,
                        help="efficientnet: resize side [the library's default: 128 for 64-px images]")
    parser.add_argument("--similarity", default=None)
    parser.add_argument("--compare-prompts", type=int, default=16)
    parser.add_argument("--max-compare-words", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="5 captions, 2 comparison prompts (smoke run)")
    parser.add_argument("--model", default="shapes", help="'shapes' or an exported pipeline directory")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated: accuracy, compare (sampled vs exact), ablation (leave one word out, "
                             "judged by the checker), overhead")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods for the accuracy and compare parts")
    parser.add_argument("--draws", type=int, default=4, help="compare part: sampler seeds per prompt and method")
    parser.add_argument("--explainer-seeds", type=int, default=4,
                        help="accuracy part: seeds of each sampled method's own draw, AUC averaged over them")
    parser.add_argument("--surrogate-budget", type=int, default=SURROGATE_BUDGET,
                        help=f"accuracy part: LIME's and SMILE's coalitions per explanation [{SURROGATE_BUDGET}]")
    parser.add_argument("--caption-draw", type=int, default=REPORTED_DRAW,
                        help="accuracy part: seed of the caption draw (choose settings on another draw)")
    parser.add_argument("--perturbation", default="drop", choices=("drop", "empty_embedding"),
                        help="how a coalition's missing words are removed (see PromptGame)")
    parser.add_argument("--cache", default=":memory:",
                        help="generation cache file: a re-run with another method or budget costs no images")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    methods = tuple(args.methods.split(","))
    if not parts <= set(PARTS) or not parts:
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    if not set(methods) <= set(METHODS):
        parser.error(f"--methods must be among {METHODS}, got {args.methods!r}")
    if args.draws < 1 or args.explainer_seeds < 1:
        parser.error(f"--draws and --explainer-seeds must be >= 1, got {args.draws} and {args.explainer_seeds}")
    if args.quick:  # a smoke run: 5 captions, 1 seed, 2 comparison prompts of at most 8 words
        args.captions, args.compare_prompts, args.seeds = 5, 2, 1
    ctx = setup(args, parts, methods)
    shared = dict(seeds=args.seeds, embedder=ctx.embedder.name, perturbation=args.perturbation,
                  cache_images_at_start=ctx.images_at_start, machine=machine())
    # the current result: every setting at its default (which parts, which methods and the cache file aside)
    defaults = vars(parser.parse_args(["--parts", args.parts, "--methods", args.methods, "--cache", args.cache]))
    current = vars(args) == defaults
    for part in [p for p in PARTS if p in parts]:
        payload, lines = PART_FUNCTIONS[part](ctx, args)
        title = f"# Word attribution: {part}"
        write(f"{args.name or 'word_attribution'}_{part}", dict(shared, **payload), "\n".join([title, ""] + lines),
              current=current)


PART_FUNCTIONS = dict(accuracy=accuracy_part, compare=compare_part, ablation=ablation_part, overhead=overhead_part)


if __name__ == "__main__":
    main()
