"""Shapley estimators side by side on full game tables of held-out shapes captions.

Usage: python -m benchmarks.estimators [--parts tables,errors] [--captions 30] [--min-words 5] [--max-words 8]
       [--cheap-steps 4] [--draws 8] [--name NAME]

- tables: every coalition of each caption's words generated at full fidelity (the shipped text2image
  model's 20 steps) and at the cheap one (``--cheap-steps``), 2 image seeds, valued as
  ``explain_prompt`` values them (EfficientNet-128, -L2 to the full prompt's image); stored once in
  ``runs/estimators_tables.npz`` with the measured seconds per image of each level.
- errors: every estimator on the stored tables (no generation) at budgets of d, 2d, 4d and 8d
  full-generation equivalents: ours (KernelSHAP, permutation, multi-fidelity: exact or KernelSHAP
  on the cheap table, KernelSHAP correction on the full one), shap's KernelExplainer and
  PermutationExplainer, captum's KernelShap and ShapleyValueSampling (the ``bench`` extra). Error:
  mean absolute error against exact Shapley of the full table, L1-normalised by the exact values;
  mean and sd over ``--draws`` sampler seeds; plus word-relevance ROC-AUC against the world's truth.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from ._common import machine, write

TABLES = Path("runs/estimators_tables.npz")
FACTORS = (1, 2, 4, 8)


class TableGame:
    """A game read from a full table (2^d coalitions indexed like ``all_masks``, K seeds)."""

    def __init__(self, table: np.ndarray):
        self.table = table
        self.n_players = int(np.log2(len(table)))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool)
        return self.table[(masks * (1 << np.arange(self.n_players))).sum(axis=1)]


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
    full_tables, cheap_tables, relevance, texts = [], [], [], []
    seconds = {"full": [0.0, 0], "cheap": [0.0, 0]}
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
    per_image = {k: (s / n if n else float("nan")) for k, (s, n) in seconds.items()}
    TABLES.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(TABLES, captions=np.array(texts), cheap_steps=args.cheap_steps,
                        full_steps=adapter.num_inference_steps, cost_ratio=per_image["cheap"] / per_image["full"],
                        **{f"full_{i}": t for i, t in enumerate(full_tables)},
                        **{f"cheap_{i}": t for i, t in enumerate(cheap_tables)},
                        **{f"relevance_{i}": r for i, r in enumerate(relevance)})
    correlations = [float(np.corrcoef(f.mean(1), c.mean(1))[0, 1]) for f, c in zip(full_tables, cheap_tables)]
    payload = dict(n_captions=len(scenes), words=[len(s.words) for s in scenes], seconds_per_image=per_image,
                   cost_ratio=per_image["cheap"] / per_image["full"], cheap_steps=args.cheap_steps,
                   full_steps=adapter.num_inference_steps, value_correlation=correlations,
                   wall_s=time.perf_counter() - start, machine=machine())
    table = (f"# Full game tables of {len(scenes)} held-out captions ({args.min_words}-{args.max_words} words)\n\n"
             f"Every coalition, 2 image seeds, at {adapter.num_inference_steps} steps and at {args.cheap_steps}: "
             f"{per_image['full']:.3f} vs {per_image['cheap']:.3f} s per new image (cost ratio "
             f"{payload['cost_ratio']:.2f} full-generation equivalents). Correlation of the two levels' coalition "
             f"values per caption: median {np.median(correlations):.3f} (min {min(correlations):.3f}).\n")
    return payload, table


def _ours(method: str, full: TableGame, cheap: TableGame, budget: int, ratio: float, seed: int) -> np.ndarray | None:
    from diffexplain.explain.kernel_shap import KernelShapExplainer
    from diffexplain.explain.multifidelity import MultiFidelityShapley
    from diffexplain.explain.permutation import PermutationExplainer

    d = full.n_players
    if method == "kernelshap":
        return None if budget < d + 2 else KernelShapExplainer(0).explain(full, budget=min(budget, 2 ** d),
                                                                           seed=seed).values
    if method == "permutation":
        return None if budget < 2 * d else PermutationExplainer().explain(full, budget=budget, seed=seed).values
    # multi-fidelity: the cheap level on every coalition when that leaves d + 2 full ones, the rest of
    # the budget on full coalitions; else d + 2 full ones and KernelSHAP on as many cheap ones as remain
    if 2 ** d * ratio + d + 2 <= budget:
        m, cheap_budget = min(2 ** d, int(budget - 2 ** d * ratio)), 2 ** d
    else:
        m, cheap_budget = d + 2, int((budget - d - 2) / ratio)
    if cheap_budget < d + 2:
        return None  # too small a budget to buy a cheap level
    return MultiFidelityShapley(cheap, cheap_cost=ratio, cheap_budget=cheap_budget,
                                n_bootstrap=0).explain(full, budget=m, seed=seed).values


def _external(method: str, table: np.ndarray, budget: int, seed: int) -> np.ndarray | None:
    """shap / captum estimators on the mean-over-seeds table (they take one output); None where the
    budget is below what the estimator needs."""
    d = int(np.log2(len(table)))
    needs = {"shap_kernel": d + 2, "shap_permutation": 2 * d + 1, "captum_kernel": d + 2, "captum_sampling": d + 1}
    if budget < needs[method]:
        return None
    values = table.mean(axis=1)
    weights = 1 << np.arange(d)

    def f(x: np.ndarray) -> np.ndarray:
        return values[(np.asarray(x) > 0.5).astype(int) @ weights]

    if method.startswith("shap_"):
        import shap

        background = np.zeros((1, d))
        if method == "shap_kernel":
            explainer = shap.KernelExplainer(f, background, seed=seed)
            return np.asarray(explainer.shap_values(np.ones((1, d)), nsamples=budget, silent=True))[0]
        np.random.seed(seed)
        explainer = shap.explainers.Permutation(f, shap.maskers.Independent(background, max_samples=1), seed=seed)
        return np.asarray(explainer(np.ones((1, d)), max_evals=budget).values)[0]
    from captum.attr import KernelShap, ShapleyValueSampling

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(f(x.numpy())).float()

    inputs, baselines = torch.ones(1, d), torch.zeros(1, d)
    torch.manual_seed(seed)
    if method == "captum_kernel":
        return KernelShap(forward).attribute(inputs, baselines=baselines, n_samples=budget)[0].numpy()
    return ShapleyValueSampling(forward).attribute(inputs, baselines=baselines, n_samples=budget // (d + 1))[0].numpy()


def errors_part(args) -> tuple[dict, str]:
    from diffexplain.metrics import roc_auc

    data = np.load(TABLES)
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
    exact_auc = []
    from diffexplain.explain.shapley import shapley_from_table

    for i in range(n):
        full_table, cheap_table, relevance = data[f"full_{i}"], data[f"cheap_{i}"], data[f"relevance_{i}"]
        d = int(np.log2(len(full_table)))
        truth = shapley_from_table(full_table, d).mean(axis=1)
        scale = np.abs(truth).sum() or 1.0
        exact_auc.append(roc_auc(truth, relevance))
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
                    per_draw.append(float(np.abs(np.asarray(estimate) - truth).sum() / scale / d))
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
    payload = dict(n_captions=n, draws=args.draws, cost_ratio=ratio, exact_auc=float(np.mean(exact_auc)),
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
    return payload, "\n".join(lines + [""])


PARTS = ("tables", "errors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--captions", type=int, default=30)
    parser.add_argument("--min-words", type=int, default=5)
    parser.add_argument("--max-words", type=int, default=8)
    parser.add_argument("--cheap-steps", type=int, default=4)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--cache", default="runs/estimators_cache.sqlite")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    torch.set_flush_denormal(True)
    for part in parts:
        payload, table = tables_part(args) if part == "tables" else errors_part(args)
        write(f"{args.name or 'estimators'}_{part}", payload, table, current=args.name is None)


if __name__ == "__main__":
    main()
