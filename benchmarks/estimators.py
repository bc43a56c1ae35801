"""Shapley estimators side by side on full game tables of held-out shapes captions.

Usage: python -m benchmarks.estimators [--parts tables,errors,tolerance,levels] [--captions 30] [--min-words 5]
       [--max-words 8] [--long 2] [--long-max-words 10] [--longest 1] [--longest-max-words 12]
       [--cheap-steps 4] [--draws 8] [--name NAME]

- tables: every coalition of each caption's words generated at full fidelity (the shipped text2image
  model's 20 steps) and at the cheap one (``--cheap-steps``), 2 image seeds, valued as
  ``explain_prompt`` values them (EfficientNet-128, -L2 to the full prompt's image); stored once in
  ``benchmarks/results/estimators_tables.npz`` (kept in the repository: the other parts need no
  generation) with the measured cost ratio of the two levels.
- errors: every estimator on the stored tables (no generation) at budgets of d, 2d, 4d and 8d
  full-generation equivalents: ours (KernelSHAP, permutation, multi-fidelity: exact or KernelSHAP
  on the cheap table, KernelSHAP correction on the full one), shap's KernelExplainer and
  PermutationExplainer, captum's KernelShap and ShapleyValueSampling (the ``bench`` extra). Error:
  mean absolute error against exact Shapley of the full table, L1-normalised by the exact values;
  mean and sd over ``--draws`` sampler seeds; plus word-relevance ROC-AUC against the world's truth.
- tolerance: ``--tolerance`` against the fixed default budget on 50 held-out captions.
- levels: the other cheap versions (``--levels``, default 2 steps and 32 px) on the first
  ``--levels-captions`` captions: cost, correlation, cheap-only and multi-fidelity errors.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from ._common import chosen_parts, machine, write


def _stored(args, kind: str) -> Path:
    """Where the game tables (``kind`` "tables") and the other levels' tables ("levels") are kept: beside
    the current results for a run of the canonical command, so that the errors and levels parts re-run
    on a fresh clone without generating; under the ignored ``runs/benchmarks`` for a named run."""
    from . import _common

    return (_common.RESULTS if args.name is None else _common.AD_HOC) / f"{args.name or 'estimators'}_{kind}.npz"
FACTORS = (1, 2, 4, 8)


def _save(path: Path, **arrays) -> None:
    """Written whole, then renamed: a crash keeps the last complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)


def _error(estimate, truth: np.ndarray) -> float:
    """Mean absolute error per word, L1-normalised by the exact values."""
    return float(np.abs(np.asarray(estimate) - truth).sum() / (np.abs(truth).sum() or 1.0) / len(truth))


class TableGame:
    """A game read from a full table (2^d coalitions indexed like ``all_masks``, K seeds)."""

    def __init__(self, table: np.ndarray):
        self.table = table
        self.n_players = int(np.log2(len(table)))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool)
        return self.table[(masks * (1 << np.arange(self.n_players))).sum(axis=1)]


def measure_ratio(adapter, cheap, prompt: str, rounds: int = 4) -> float:
    """Seconds per image of the cheap level over the full level's, on fresh images (no cache): a batch
    at each level in turn, ``rounds`` times, so that whatever else the machine does weighs on both."""
    spent = {"full": 0.0, "cheap": 0.0}
    seeds = list(range(10_000, 10_000 + adapter.batch_size))
    for _ in range(rounds):
        for level, level_adapter in (("full", adapter), ("cheap", cheap)):
            begin = time.perf_counter()
            level_adapter.generate([prompt] * len(seeds), seeds)
            spent[level] += time.perf_counter() - begin
    return spent["cheap"] / spent["full"]


def tables_part(args) -> tuple[dict, str]:
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import build_embedder
    from diffexplain.explain.prompt_game import PromptGame
    from diffexplain.explain.settings import ExplainSettings
    from diffexplain.metrics.functional import all_masks
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    from .word_attribution import captions

    adapter = TextToImageAdapter(load_pipeline("shapes"))
    cheap = adapter.variant(num_inference_steps=args.cheap_steps)
    settings = ExplainSettings(seeds=2)
    embedder = build_embedder(settings, adapter)
    cache = GenerationCache(args.cache)
    scenes = captions(args.captions, args.min_words, args.max_words, seed=2024)  # the accuracy part's draw
    if args.long:  # longer prompts: their tables cost 2^d coalitions, so fewer of them
        scenes += captions(args.long, args.max_words + 1, args.long_max_words, seed=2025)
    for words in range(args.long_max_words + 1, args.longest_max_words + 1):  # a draw of their own, per length,
        scenes += captions(args.longest, words, words, seed=2026)  # so the groups above keep their captions
    full_tables, cheap_tables, relevance, texts = [], [], [], []
    seconds = {"full": [0.0, 0], "cheap": [0.0, 0]}
    ratio = None
    start = time.perf_counter()
    for number, scene in enumerate(scenes):
        masks = all_masks(len(scene.words))
        for level, level_adapter, out in (("full", adapter, full_tables), ("cheap", cheap, cheap_tables)):
            game = PromptGame(level_adapter, scene.caption, settings, embedder=embedder, cache=cache)
            out.append(game(masks))
            seconds[level][0] += game.generation_seconds
            seconds[level][1] += game.generated
        relevance.append(scene.relevance.astype(bool))
        texts.append(scene.caption)
        print(f"{number + 1}/{len(scenes)} {scene.caption!r} ({time.perf_counter() - start:.0f} s)", flush=True)
        if ratio is None:
            ratio = measure_ratio(adapter, cheap, scenes[0].caption)
        _save(_stored(args, "tables"), captions=np.array(texts), cheap_steps=args.cheap_steps,
              full_steps=adapter.num_inference_steps, cost_ratio=ratio,
              **{f"full_{i}": t for i, t in enumerate(full_tables)},
              **{f"cheap_{i}": t for i, t in enumerate(cheap_tables)},
              **{f"relevance_{i}": r for i, r in enumerate(relevance)})
    per_image = {k: (s / n if n else float("nan")) for k, (s, n) in seconds.items()}
    per_image["ratio"] = ratio
    correlations = [float(np.corrcoef(f.mean(1), c.mean(1))[0, 1]) for f, c in zip(full_tables, cheap_tables)]
    payload = dict(n_captions=len(scenes), words=[len(s.words) for s in scenes], seconds_per_image=per_image,
                   cost_ratio=ratio, cheap_steps=args.cheap_steps,
                   full_steps=adapter.num_inference_steps, value_correlation=correlations,
                   wall_s=time.perf_counter() - start, machine=machine())
    words = [len(s.words) for s in scenes]
    table = (f"# Full game tables of {len(scenes)} held-out captions ({min(words)}-{max(words)} words)\n\n"
             f"Every coalition, 2 image seeds, at {adapter.num_inference_steps} steps and at {args.cheap_steps}: "
             + "; ".join(f"{level}: {per_image[level]:.3f} s per new image" if per_image[level] == per_image[level]
                         else f"{level}: every image from the cache" for level in ("full", "cheap"))
             + f". Cost ratio {payload['cost_ratio']:.2f} full-generation equivalents, measured on fresh batches of "
             "both levels in turn. Correlation of the two levels' coalition "
             f"values per caption: median {np.median(correlations):.3f} (min {min(correlations):.3f}).\n")
    return payload, table


def _ours(method: str, full: TableGame, cheap: TableGame | None, budget: int, ratio: float, seed: int,
          **options) -> np.ndarray | None:
    from diffexplain.explain.kernel_shap import KernelShapExplainer
    from diffexplain.explain.multifidelity import MultiFidelityShapley
    from diffexplain.explain.permutation import PermutationExplainer

    d = full.n_players
    if method == "kernelshap":
        return None if budget < d + 2 else KernelShapExplainer(0).explain(full, budget=min(budget, 2 ** d),
                                                                           seed=seed).values
    if method == "permutation":
        return None if budget < d + 2 else PermutationExplainer().explain(full, budget=budget, seed=seed).values
    try:  # multi-fidelity spends the budget itself (cheap level first)
        return MultiFidelityShapley(cheap, cheap_cost=ratio, n_bootstrap=0, **options).explain(
            full, budget=budget, seed=seed).values
    except ValueError:
        return None  # too small a budget to buy a cheap level


def _run_external(method: str, f, d: int, parameter: int, seed: int) -> np.ndarray:
    """One shap / captum estimator with its own budget parameter (nsamples, max_evals, n_samples)."""
    if method.startswith("shap_"):
        import shap

        background = np.zeros((1, d))
        if method == "shap_kernel":
            explainer = shap.KernelExplainer(f, background, seed=seed)
            return np.asarray(explainer.shap_values(np.ones((1, d)), nsamples=parameter, silent=True))[0]
        np.random.seed(seed)
        explainer = shap.explainers.Permutation(f, shap.maskers.Independent(background, max_samples=1), seed=seed)
        return np.asarray(explainer(np.ones((1, d)), max_evals=parameter).values)[0]
    from captum.attr import KernelShap, ShapleyValueSampling

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(f(x.numpy())).float()

    inputs, baselines = torch.ones(1, d), torch.zeros(1, d)
    torch.manual_seed(seed)
    if method == "captum_kernel":
        return KernelShap(forward).attribute(inputs, baselines=baselines, n_samples=parameter)[0].numpy()
    return ShapleyValueSampling(forward).attribute(inputs, baselines=baselines, n_samples=parameter)[0].numpy()


def _external(method: str, table: np.ndarray, budget: int, seed: int) -> np.ndarray | None:
    """shap / captum estimators on the mean-over-seeds table (they take one output), each at the largest
    setting of its own budget parameter whose *distinct* coalitions fit ``budget``: what a cache of
    generations would charge. (Their parameters count otherwise: shap's KernelExplainer evaluates the
    empty and full coalitions beyond ``nsamples``; the permutation samplers and captum's KernelShap repeat
    coalitions.) None where no setting fits."""
    d = int(np.log2(len(table)))
    values = table.mean(axis=1)
    weights = 1 << np.arange(d)
    seen: set[int] = set()

    def f(x: np.ndarray) -> np.ndarray:
        index = (np.asarray(x) > 0.5).astype(int) @ weights
        seen.update(np.atleast_1d(index).tolist())
        return values[index]

    def attempt(parameter: int) -> np.ndarray | None:
        seen.clear()
        try:
            estimate = _run_external(method, f, d, parameter, seed)
        except Exception:  # noqa: BLE001 - a setting the estimator refuses (too few evaluations)
            return None
        return estimate if len(seen) <= budget else None

    # the parameter's smallest useful value, then doubling and bisection on "distinct coalitions fit"
    low = {"shap_kernel": max(1, budget - 2), "shap_permutation": 2 * d + 1, "captum_kernel": d + 2,
           "captum_sampling": 1}[method]
    best_parameter, best = low, attempt(low)
    if best is None:
        return None
    high = low * 2
    while (estimate := attempt(high)) is not None and high < 64 * budget:
        best_parameter, best, high = high, estimate, high * 2
    lo, hi = best_parameter, high
    while hi - lo > 1:
        mid = (lo + hi) // 2
        estimate = attempt(mid)
        if estimate is None:
            hi = mid
        else:
            lo, best = mid, estimate
    return best


BLENDS = (1.0, 0.5, 0.25, 0.1)


def errors_part(args) -> tuple[dict, str]:
    from diffexplain.metrics import roc_auc, spearman

    data = np.load(_stored(args, "tables"))
    n = len(data["captions"])
    ratio = float(data["cost_ratio"])
    methods = ["kernelshap", "permutation", "multifidelity"]
    external = []
    for module, names in (("shap", ["shap_kernel", "shap_permutation"]), ("captum", ["captum_kernel",
                                                                                     "captum_sampling"])):
        try:
            __import__(module)
            external += names
        except ImportError:
            print(f"{module} is not installed (pip install -e '.[bench]'): its estimators are left out")
    errors: dict = {m: {f: [] for f in FACTORS} for m in methods + external}
    aucs: dict = {m: {f: [] for f in FACTORS} for m in methods + external}
    exact_auc, cheap_only = [], []
    blend_errors: dict = {(t, f): [] for t in BLENDS for f in (2, 4)}
    from diffexplain.explain.shapley import shapley_from_table

    for i in range(n):
        full_table, cheap_table, relevance = data[f"full_{i}"], data[f"cheap_{i}"], data[f"relevance_{i}"]
        d = int(np.log2(len(full_table)))
        truth = shapley_from_table(full_table, d).mean(axis=1)
        exact_auc.append(roc_auc(truth, relevance))
        cheap_truth = shapley_from_table(cheap_table, d).mean(axis=1)  # what explaining at 4 steps gives
        cheap_only.append(dict(spearman=spearman(cheap_truth, truth), auc=roc_auc(cheap_truth, relevance),
                               error=_error(cheap_truth, truth),
                               value_correlation=float(np.corrcoef(full_table.mean(1), cheap_table.mean(1))[0, 1])))
        for t in BLENDS:  # a cheap level t of the way from the full game to the measured cheap one
            blended = TableGame(full_table + t * (cheap_table - full_table))
            for factor in (2, 4):
                per = [_ours("multifidelity", TableGame(full_table), blended, factor * d, ratio, draw,
                             full_only_share=None) for draw in range(args.draws)]  # always the cheap level
                blend_errors[(t, factor)].append([_error(e, truth) for e in per])
        for factor in FACTORS:
            budget = factor * d
            for method in methods + external:
                per_draw, per_auc = [], []
                for draw in range(args.draws):
                    if method in methods:
                        estimate = _ours(method, TableGame(full_table), TableGame(cheap_table), budget, ratio, draw)
                    else:
                        estimate = _external(method, full_table, budget, draw)
                    if estimate is None:
                        break
                    per_draw.append(_error(estimate, truth))
                    per_auc.append(roc_auc(np.asarray(estimate), relevance))
                if per_draw:
                    errors[method][factor].append(per_draw)
                    aucs[method][factor].append(per_auc)

    def stats(rows):
        if not rows:
            return None
        by_draw = np.array(rows).mean(axis=0)  # mean over captions, per sampler draw
        return dict(mean=float(by_draw.mean()), sd=float(by_draw.std(ddof=1)) if len(by_draw) > 1 else 0.0)

    summary = {m: {f: stats(errors[m][f]) for f in FACTORS} for m in errors}
    auc_summary = {m: {f: stats(aucs[m][f]) for f in FACTORS} for m in aucs}
    blends = {f"{t:g}": {f"{f}d": stats(blend_errors[(t, f)]) for f in (2, 4)} for t in BLENDS}
    cheap_summary = {k: float(np.median([c[k] for c in cheap_only])) for k in cheap_only[0]}
    cheap_summary["auc_mean"] = float(np.mean([c["auc"] for c in cheap_only]))
    payload = dict(n_captions=n, draws=args.draws, cost_ratio=ratio, exact_auc=float(np.mean(exact_auc)),
                   cheap_only=cheap_summary, cheap_only_per_caption=cheap_only, blends=blends,
                   errors=summary, auc=auc_summary, machine=machine())
    lines = [f"# Shapley estimators on full game tables of {n} held-out captions", "",
             f"Error: mean absolute error vs exact Shapley of the full table, per word, L1-normalised "
             f"(mean +- sd over {args.draws} sampler draws). Budgets in full-generation equivalents; a cheap "
             f"coalition costs {ratio:.2f}. Exact Shapley's word-relevance AUC: {np.mean(exact_auc):.3f}.", "",
             "| estimator | " + " | ".join(f"{f}d" for f in FACTORS) + " | AUC at 4d |",
             "|---|" + "---|" * (len(FACTORS) + 1)]
    for method in errors:
        cells = []
        for factor in FACTORS:
            s = summary[method][factor]
            cells.append("-" if s is None else f"{s['mean']:.4f} +- {s['sd']:.4f}")
        a = auc_summary[method][4]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'-' if a is None else format(a['mean'], '.3f')} |")
    lines += ["", f"Explaining at the cheap level only (exact Shapley of the {int(data['cheap_steps'])}-step table): "
              f"median Spearman {cheap_summary['spearman']:.3f} with the full explanation, median error "
              f"{cheap_summary['error']:.4f} (the floor under multi-fidelity at budgets that buy few full "
              f"images), word-relevance AUC {cheap_summary['auc_mean']:.3f} (full: {np.mean(exact_auc):.3f}); "
              f"median correlation of the two levels' coalition values {cheap_summary['value_correlation']:.3f}.",
              "", "Multi-fidelity where the cheap level is closer to the full one (the cheap table moved t of "
              "the way from the full table to the measured cheap one; t = 1 is the measured model), always "
              "spending on the cheap level (no switch to the full model alone at a quarter of the coalitions):", "",
              "| t | multi-fidelity at 2d | at 4d |", "|---|---|---|"]
    for t in BLENDS:
        row = blends[f"{t:g}"]
        lines.append(f"| {t:g} | {row['2d']['mean']:.4f} +- {row['2d']['sd']:.4f} | "
                     f"{row['4d']['mean']:.4f} +- {row['4d']['sd']:.4f} |")
    return payload, "\n".join(lines + [""])


def levels_part(args) -> tuple[dict, str]:
    """The other cheap versions the tool offers, on the first ``--levels-captions`` captions of the
    tables' draw: every coalition at each of ``--levels`` (``--fidelity`` specs), 2 seeds, its cost
    ratio measured against the full level on fresh interleaved batches; then, from the stored full
    tables, each level's coalition-value correlation, its cheap-only explanation (Spearman and error
    vs exact Shapley of the full table) and multi-fidelity at 2d and 4d (mean over ``--draws``)."""
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import build_embedder
    from diffexplain.explain.multifidelity import cheap_adapter, fidelity_from
    from diffexplain.explain.prompt_game import PromptGame
    from diffexplain.explain.settings import ExplainSettings
    from diffexplain.explain.shapley import shapley_from_table
    from diffexplain.metrics import spearman
    from diffexplain.metrics.functional import all_masks
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    data = np.load(_stored(args, "tables"))
    n = min(args.levels_captions, len(data["captions"]))
    texts = [str(t) for t in data["captions"][:n]]
    adapter = TextToImageAdapter(load_pipeline("shapes"))
    settings = ExplainSettings(seeds=2)
    embedder = build_embedder(settings, adapter)
    cache = GenerationCache(args.cache)
    specs = [f"steps={int(data['cheap_steps'])}"] + [s for s in args.levels.split(",") if s]
    levels_file = _stored(args, "levels")
    stored = dict(np.load(levels_file)) if levels_file.exists() else {}
    fulls = [data[f"full_{i}"] for i in range(n)]
    words = [int(np.log2(len(table))) for table in fulls]
    truths = [shapley_from_table(table, d).mean(axis=1) for table, d in zip(fulls, words)]
    rows: dict = {}
    for spec in specs:
        level = cheap_adapter(adapter, fidelity_from(spec))
        if spec == specs[0]:
            ratio = float(data["cost_ratio"])  # the tables' own level and measured ratio
            tables = [data[f"cheap_{i}"] for i in range(n)]
        else:
            tables = []
            for i, text in enumerate(texts):
                key = f"{spec}_{i}"
                if key not in stored:
                    game = PromptGame(level, text, settings, embedder=embedder, cache=cache)
                    stored[key] = game(all_masks(words[i]))
                    _save(levels_file, **stored)
                tables.append(stored[key])
                print(f"{spec}: {i + 1}/{n}", flush=True)
            ratio = stored.get(f"{spec}_ratio")
            if ratio is None:
                ratio = measure_ratio(adapter, level, texts[0])
                stored[f"{spec}_ratio"] = np.array(ratio)
                _save(levels_file, **stored)
            ratio = float(ratio)
        correlation, rho, cheap_error, mf = [], [], [], {2: [], 4: []}
        for full_table, cheap_table, d, truth in zip(fulls, tables, words, truths):
            cheap_truth = shapley_from_table(cheap_table, d).mean(axis=1)
            correlation.append(float(np.corrcoef(full_table.mean(1), cheap_table.mean(1))[0, 1]))
            rho.append(spearman(cheap_truth, truth))
            cheap_error.append(_error(cheap_truth, truth))
            for factor in mf:
                mf[factor].append(np.mean([_error(_ours("multifidelity", TableGame(full_table), TableGame(cheap_table),
                                                        factor * d, ratio, draw, full_only_share=None), truth)
                                           for draw in range(args.draws)]))
        rows[spec] = dict(cost_ratio=ratio, value_correlation=float(np.median(correlation)),
                          cheap_only_spearman=float(np.median(rho)), cheap_only_error=float(np.mean(cheap_error)),
                          multifidelity_2d=float(np.mean(mf[2])), multifidelity_4d=float(np.mean(mf[4])))
    kernel = {factor: float(np.mean([np.mean([_error(_ours("kernelshap", TableGame(full_table), None, factor * d,
                                                           1.0, draw), truth) for draw in range(args.draws)])
                                     for full_table, d, truth in zip(fulls, words, truths)]))
              for factor in (2, 4)}  # KernelSHAP on the full model alone, the same captions
    payload = dict(n_captions=n, captions=texts, words=words, levels=rows, kernelshap=kernel, draws=args.draws,
                   machine=machine())
    lines = [f"# The cheap levels side by side ({n} held-out captions of {min(words)}-{max(words)} words)", "",
             "Every coalition at each level, 2 seeds. Multi-fidelity here always uses the cheap level "
             "(no full-only switch), so the levels compare; error vs exact Shapley of the full table, "
             f"L1-normalised, mean over {args.draws} draws. KernelSHAP on the full model alone: "
             f"{kernel[2]:.4f} at 2d, {kernel[4]:.4f} at 4d.", "",
             "| cheap level | cost (full-generation equivalents) | coalition-value correlation (median) | "
             "cheap-only Spearman (median) | cheap-only error | multi-fidelity 2d | multi-fidelity 4d |",
             "|---|---|---|---|---|---|---|"]
    for spec, row in rows.items():
        lines.append(f"| {spec} | {row['cost_ratio']:.2f} | {row['value_correlation']:.3f} | "
                     f"{row['cheap_only_spearman']:.3f} | {row['cheap_only_error']:.4f} | "
                     f"{row['multifidelity_2d']:.4f} | {row['multifidelity_4d']:.4f} |")
    lines += ["", "No smaller pipeline of the shapes model's family exists to measure `model=DIR` with; the "
              "tests load one (a tiny random pipeline saved to disk) through the same path."]
    return payload, "\n".join(lines + [""])


TOLERANCES = (0.3, 0.2, 0.1)


def tolerance_part(args) -> tuple[dict, str]:
    """``--tolerance`` against the fixed default budget (KernelSHAP, 4d) on the word-attribution
    benchmark's 50 held-out captions: word-relevance ROC-AUC and the images each asks for (coalitions
    x seeds), mean over ``--draws`` sampler seeds. The images come from the shared cache (the papers'
    benchmark generates every coalition of these captions), so this part costs little generation."""
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import PromptExplainer, build_embedder
    from diffexplain.explain.settings import ExplainSettings
    from diffexplain.metrics import roc_auc
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.loading import load_pipeline

    from .word_attribution import captions

    adapter = TextToImageAdapter(load_pipeline("shapes"))
    base = ExplainSettings(seeds=2, method="kernelshap")
    base = base.replace(embedder=build_embedder(base, adapter))  # built once, shared by every explainer
    cache = GenerationCache(args.cache)
    scenes = captions(args.tolerance_captions, 5, 8, seed=2024)
    settings = {"fixed 4d (the default)": base}
    settings.update({f"tolerance {t:g}": base.replace(tolerance=t) for t in TOLERANCES})
    results: dict = {name: dict(auc=[], images=[], rounds=[]) for name in settings}
    start = time.perf_counter()
    for number, scene in enumerate(scenes):
        for name, chosen in settings.items():
            explainer = PromptExplainer(adapter, chosen, cache=cache)
            aucs, images, rounds = [], [], []
            for draw in range(args.draws if args.draws < 4 else 4):
                e = explainer.explain(scene.caption, sampler_seed=draw)
                aucs.append(roc_auc(e.values, scene.relevance))
                images.append(e.n_generations)
                rounds.append(len(e.info.get("rounds", [None])))
            results[name]["auc"].append(aucs)
            results[name]["images"].append(images)
            results[name]["rounds"].append(rounds)
        print(f"{number + 1}/{len(scenes)} ({time.perf_counter() - start:.0f} s)", flush=True)
    summary = {name: dict(auc=float(np.nanmean(r["auc"])), images=float(np.mean(r["images"])),
                          rounds=float(np.mean(r["rounds"]))) for name, r in results.items()}
    fixed = summary["fixed 4d (the default)"]
    for row in summary.values():
        row["images_saved"] = 1 - row["images"] / fixed["images"]
    payload = dict(n_captions=len(scenes), draws=min(args.draws, 4), summary=summary, per_caption=results,
                   captions=[s.caption for s in scenes], wall_s=round(time.perf_counter() - start, 1),
                   machine=machine())
    lines = [f"# Anytime explanations (--tolerance) against the fixed default budget, {len(scenes)} held-out captions",
             "", "KernelSHAP, 2 image seeds; images asked = coalitions x seeds (every one from the shared cache "
             f"here); mean over {payload['draws']} sampler seeds. A tolerance T stops once every standard error, "
             "or every value's change since the previous round, is below T times the values' L1 norm (rounds of "
             "2d + 2 coalitions, then d more; images asked: the coalitions of every round x seeds).", "",
             "| setting | word-relevance AUC | images asked | saved vs the default | rounds |", "|---|---|---|---|---|"]
    for name, row in summary.items():
        lines.append(f"| {name} | {row['auc']:.3f} | {row['images']:.1f} | {row['images_saved']:.0%} | "
                     f"{row['rounds']:.1f} |")
    return payload, "\n".join(lines + [""])


PARTS = ("tables", "errors", "tolerance", "levels")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--min-words", type=int, default=5)
    parser.add_argument("--max-words", type=int, default=8)
    parser.add_argument("--captions", type=int, default=30)
    parser.add_argument("--long", type=int, default=2, help="more captions, of max-words+1 .. --long-max-words")
    parser.add_argument("--long-max-words", type=int, default=10)
    parser.add_argument("--longest", type=int, default=1,
                        help="captions of each length from --long-max-words+1 to --longest-max-words")
    parser.add_argument("--longest-max-words", type=int, default=12)
    parser.add_argument("--cheap-steps", type=int, default=4)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--tolerance-captions", type=int, default=50)
    parser.add_argument("--levels", default="steps=2,size=32", help="cheap levels beside the tables' own")
    parser.add_argument("--levels-captions", type=int, default=8)
    parser.add_argument("--cache", default="runs/estimators_cache.sqlite")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    parts = chosen_parts(parser, args.parts, PARTS)
    torch.set_flush_denormal(True)
    for part in parts:
        payload, table = {"tables": tables_part, "errors": errors_part, "tolerance": tolerance_part,
                          "levels": levels_part}[part](args)
        write(f"{args.name or 'estimators'}_{part}", payload, table, current=args.name is None)


if __name__ == "__main__":
    main()
