"""Editing and image-to-image: edit fidelity, instruction-word attribution, insertion and IMACS.

Usage: python -m benchmarks.edits [--pix2pix instruct_pix2pix|DIR] [--pbe paint_by_example|DIR]
                                  [--inpaint inpaint|DIR] [--edits 64] [--explain 12]
                                  [--insertions 120] [--inpaintings 120] [--cache FILE] [--quick]

Parts (``--parts pix2pix,insertion,inpainting``), each written to
benchmarks/results/edits_<part>.{json,md} when every setting is at its default (a cache file aside),
else, or with --name, to runs/benchmarks/:
- pix2pix fidelity: held-out edits (source scene, instruction, target scene); an edit succeeds
  when the checker reads the *target* caption back from the edited image (colours, count, shapes,
  and position where the caption names one).
- instruction attribution: exact Shapley and SMILE (the default -L2 on EfficientNet embeddings) on held-out
  instructions; ROC-AUC of the values against the words' binary relevance (content vs filler);
  every instruction's words and values; the fillers the model uses (dropping one alone breaks a
  successful edit) and the AUC without them.
- insertion and IMACS: Paint-by-Example fills a held-out scene's object box from the object's
  reference crop. Success: the checker reads the scene's caption back from the source with the
  generated box pasted in (the pipeline redraws the whole image; success on the whole generated
  image is reported as well). Quality: IoU of the pixels
  of the reference's colour inside the box with the true object mask. IMACS (lambda 3) of the
  reference-to-generated map against the mask, and of the guidance-difference map
  (|pred(reference) - pred(unconditional)|, attention.guidance); reported for each: ROC-AUC of
  IMACS for success vs failure and its Spearman correlation with the IoU.
- inpainting: the inpaint model repaints a held-out scene's object box from the scene's caption
  (source outside the box). Success and IoU as for insertion: the checker reads the caption back
  from the source with the generated box pasted in (and from the whole generated image). Caption
  attribution: exact Shapley and SMILE (1 seed) on captions of <= 8 words, with the generation
  pasted into the source (``composite=True``), ROC-AUC against the masked object's colour, shape
  and size words (everything else is visible outside the mask).
A part is skipped (and says so) when its pipeline has no weights.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from scipy.stats import spearmanr

from diffexplain.attention import record_prompt
from diffexplain.cache import GenerationCache
from diffexplain.embed import make_embedder
from diffexplain.explain.api import explain_prompt
from diffexplain.explain.surrogate import SURROGATE_BUDGET
from diffexplain.image2image.i2am import i2am_paint_by_example
from diffexplain.metrics import imacs, roc_auc
from diffexplain.models.edit_adapter import EditAdapter, PaintByExampleAdapter
from diffexplain.models.loading import load_pipeline
from diffexplain_shapes import check, sample_scene
from diffexplain_shapes import pipelines as shapes
from diffexplain_shapes.edits import inpainted_relevance, sample_edit
from diffexplain_shapes.scene import COLOURS, IMAGE_SIZE
from diffexplain_shapes.tasks import box_mask, reference_crop, reference_object_mask

from ._common import drop_one_images, machine, write

DEFAULTS = shapes.defaults("text2image")  # sampler and attention settings the shipped model ships
EDIT_DEFAULTS = shapes.defaults("instruct_pix2pix")  # and the editing models'

EDIT_DRAW = 5150  # the reported InstructPix2Pix edits; sampler settings are checked on other draws


def _available(model: str) -> bool:
    if model in shapes.PIPELINES:
        return (shapes.weights_path(model) / "model_index.json").is_file()
    return os.path.isdir(model)


def broken_edits(adapter, edit, seeds, embedder, cache) -> np.ndarray:
    """Whether dropping each word alone breaks the edit, per seed: bool (n_words, K).

    The full instruction's edit and each edit with one word dropped (the text a "drop" coalition
    sends, so exact Shapley's cache holds them) are read by the checker against the target
    caption; a word's removal breaks the edit when the full instruction's edit succeeds and the
    edit without the word does not.
    """
    d = len(edit.words)
    images = drop_one_images(adapter, edit.instruction, seeds, embedder, cache)  # (d + 1, K, H, W, 3)
    out = np.zeros((d, len(seeds)), dtype=bool)
    for k in range(len(seeds)):
        if check(images[0, k], edit.target.caption).edit_ok:
            out[:, k] = [not check(images[1 + i, k], edit.target.caption).edit_ok for i in range(d)]
    return out


def pix2pix_part(model: str, n_edits: int, n_explain: int, smile_budgets: tuple[int, ...] = (SURROGATE_BUDGET,),
                 draw: int = EDIT_DRAW, guidance: float = EDIT_DEFAULTS.guidance_scale,
                 image_guidance: float | None = None, explainer_seeds: int = 1, cache_path: str = ":memory:",
                 embedder_size: int | None = None) -> dict:
    pipe = load_pipeline(model)
    rng = np.random.default_rng(draw)
    sampler = dict(num_inference_steps=DEFAULTS.num_inference_steps, guidance_scale=guidance,
                   image_guidance_scale=image_guidance)
    edits = [sample_edit(rng, split="heldout") for _ in range(n_edits)]
    by_kind: dict[str, list[bool]] = {}
    start = time.perf_counter()
    for edit in edits:
        adapter = EditAdapter(pipe, image=edit.source.render(), **sampler)
        image = adapter.generate([edit.instruction], [0])[0]
        by_kind.setdefault(edit.kind, []).append(check(image, edit.target.caption).edit_ok)
    fidelity_s = time.perf_counter() - start
    success = float(np.mean([v for values in by_kind.values() for v in values]))
    # "smile" at the first budget, "smile@B" at the others: SMILE reuses exact Shapley's images, so a
    # larger budget costs no generations here
    runs = [("shapley", "shapley", None)] + [("smile" if i == 0 else f"smile@{b}", "smile", b)
                                              for i, b in enumerate(smile_budgets)]
    explained = [e for e in edits if 0 < e.relevance.sum() < len(e.words) <= 9][:n_explain]
    # one network for every explanation (loading it is not free); None: the library's default side
    embedder = make_embedder("efficientnet", image_size=embedder_size, image_side=IMAGE_SIZE)
    # the source image is part of the adapter's fingerprint, so one file can hold every instruction's images
    cache = GenerationCache(cache_path)
    sampler_seeds = [0, 1]  # every coalition's images, and the leave-one-out check's
    per_instruction = []
    for edit in explained:
        adapter = EditAdapter(pipe, image=edit.source.render(), **sampler)
        record = dict(instruction=edit.instruction, kind=edit.kind, words=[w.text for w in edit.words],
                      roles=[w.role for w in edit.words],
                      relevance=[int(r) for r in edit.relevance], values={}, auc={})
        for key, method, budget in runs:
            aucs, values = [], []
            for explainer_seed in range(1 if method == "shapley" else explainer_seeds):
                e = explain_prompt(adapter, edit.instruction, method=method, seeds=sampler_seeds, embedder=embedder,
                                   budget=budget, cache=cache, sampler_seed=explainer_seed)
                aucs.append(roc_auc(e.values, edit.relevance))
                values.append([float(v) for v in e.values])
            record["values"][key], record["auc"][key] = values, aucs
        breaks = broken_edits(adapter, edit, sampler_seeds, embedder, cache)
        # fillers whose removal alone breaks the edit (on either seed) are used by the model: the
        # binary ground truth calls them irrelevant, so AUC is also reported without them
        used = breaks.any(axis=1) & (edit.relevance == 0)
        record.update(breaks=breaks.astype(int).tolist(), filler_used=used.astype(int).tolist(),
                      auc_without_used_fillers={key: [roc_auc(np.asarray(v)[~used], edit.relevance[~used])
                                                      for v in record["values"][key]] for key, _, _ in runs})
        per_instruction.append(record)
    # per method: per instruction, per explainer seed (SMILE's own draw of masks; exact Shapley has none)
    attribution = {key: [r["auc"][key] for r in per_instruction] for key, _, _ in runs}
    return dict(n_edits=len(edits), draw=draw, guidance=guidance, image_guidance=image_guidance, success=success,
                success_by_kind={k: float(np.mean(v)) for k, v in by_kind.items()},
                n_by_kind={k: len(v) for k, v in by_kind.items()}, fidelity_wall_s=round(fidelity_s, 1),
                instructions=[e.instruction for e in explained],
                explainer_seeds=explainer_seeds, embedder=embedder.name,
                attribution_auc={m: float(np.nanmean(v)) if v else float("nan") for m, v in attribution.items()},
                attribution_auc_per_seed={m: np.nanmean(np.array(v), axis=0).tolist() if v else []
                                          for m, v in attribution.items()},
                attribution_auc_without_used_fillers={
                    key: float(np.nanmean([np.nanmean(r["auc_without_used_fillers"][key]) for r in per_instruction]))
                    if per_instruction else float("nan") for key, _, _ in runs},
                per_instruction=per_instruction)


def inserted_iou(image: np.ndarray, scene, index: int, box: np.ndarray) -> float:
    """IoU, inside the box, of the pixels nearest the object's palette colour with its true mask."""
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    nearest = np.argmin(((image.reshape(-1, 1, 3).astype(np.float32) - palette[None]) ** 2).sum(-1), axis=1)
    painted = (nearest.reshape(image.shape[:2]) == list(COLOURS).index(scene.objects[index].colour)) & box
    truth = scene.masks()[index] & box
    union = (painted | truth).sum()
    return float((painted & truth).sum() / union) if union else 0.0


def separation(values: np.ndarray, success: np.ndarray, whole: np.ndarray, ious: np.ndarray) -> dict:
    """How well one IMACS column separates success (pasted; whole image) from failure, and its
    Spearman correlation with the IoU. Failures are also split by where the object went: IMACS
    reads where a map's mass lies, so it can see a misplaced object (IoU < 0.5 with the target
    box) but not a well-placed one of the wrong colour, shape or size."""
    def auc(labels, keep=slice(None)):
        labels, scores = labels[keep], values[keep]
        return float(roc_auc(scores, labels)) if 0 < labels.sum() < len(labels) else float("nan")

    succeeded = success == 1
    return dict(
        mean=float(values.mean()), success_auc=auc(success), whole_image_success_auc=auc(whole),
        misplaced_failure_auc=auc(success, succeeded | (ious < 0.5)),
        well_placed_failure_auc=auc(success, succeeded | (ious >= 0.5)),
        iou_spearman=float(spearmanr(values, ious).statistic) if np.ptp(ious) > 0 else float("nan"))


def insertion_part(model: str, n: int, draw: int = 6160) -> dict:
    pipe = load_pipeline(model)
    rng = np.random.default_rng(draw)
    rows = []
    start = time.perf_counter()
    for i in range(n):
        scene = sample_scene(rng, split="heldout")
        index = int(rng.integers(len(scene.objects)))
        box = box_mask(scene, index)
        adapter = PaintByExampleAdapter(pipe, image=scene.render(), mask=box, reference=reference_crop(scene, index),
                                        num_inference_steps=DEFAULTS.num_inference_steps)
        result = i2am_paint_by_example(adapter, seed=i, reference_mask=reference_object_mask(scene, index))
        verdict = check(result.image, scene.caption)
        pasted = check(adapter.paste(result.image[None])[0], scene.caption)  # the insertion itself
        rows.append(dict(success=pasted.edit_ok, success_whole_image=verdict.edit_ok,
                         iou=inserted_iou(result.image, scene, index, box), imacs=result.imacs_r2g,
                         imacs_g2r=result.imacs_g2r,
                         imacs_guidance=result.imacs_guidance, n_found=len(verdict.objects),
                         imacs_guidance_time=list(result.imacs_guidance_time)))
    success = np.array([r["success"] for r in rows], dtype=int)
    whole = np.array([r["success_whole_image"] for r in rows], dtype=int)
    ious = np.array([r["iou"] for r in rows])

    # I2AM's map; the guidance difference, summed and per time group (the time-level view)
    scores = {name: separation(np.array([r[key] for r in rows], dtype=float), success, whole, ious)
              for key, name in (("imacs", "r2g"), ("imacs_g2r", "g2r"), ("imacs_guidance", "guidance"))}
    by_time = np.array([r["imacs_guidance_time"] for r in rows], dtype=float)  # (n, G)
    scores.update({f"guidance_t{g}": separation(by_time[:, g], success, whole, ious) for g in range(by_time.shape[1])})
    failed = success == 0
    return dict(n_insertions=n, success=float(success.mean()), success_whole_image=float(whole.mean()),
                n_misplaced_failures=int((failed & (ious < 0.5)).sum()),
                n_well_placed_failures=int((failed & (ious >= 0.5)).sum()),
                mean_iou=float(ious.mean()), imacs=scores,
                wall_s=round(time.perf_counter() - start, 1), rows=rows)


def inpainting_part(model: str, n: int, n_explain: int, draw: int = 7170) -> dict:
    pipe = load_pipeline(model)
    rng = np.random.default_rng(draw)
    rows, tasks = [], []
    start = time.perf_counter()
    for i in range(n):
        scene = sample_scene(rng, split="heldout")
        index = int(rng.integers(len(scene.objects)))
        box = box_mask(scene, index)
        tasks.append((scene, index, box))
        source = scene.render()  # the pipeline blanks the box itself (masked image = image * (mask < 0.5))
        adapter = EditAdapter(pipe, image=source, mask=box, num_inference_steps=DEFAULTS.num_inference_steps,
                              guidance_scale=EDIT_DEFAULTS.guidance_scale)
        image, maps = record_prompt(adapter, scene.caption, seed=i)  # hooks leave the image bit-identical
        # IMACS of the masked object's words' attention: text tokens, so the key-softmax is informative
        relevant = np.flatnonzero(inpainted_relevance(scene, index))
        layers = maps.layers_at_least(DEFAULTS.attention_min_grid)
        heat = torch.stack([maps.word_heatmap(int(w), layers=layers) for w in relevant]).mean(0).numpy()
        pasted = adapter.paste(image[None])[0]
        rows.append(dict(success=check(pasted, scene.caption).edit_ok,
                         success_whole_image=check(image, scene.caption).edit_ok,
                         iou=inserted_iou(image, scene, index, box), imacs_words=imacs(heat, box, 3.0)))
    wall = time.perf_counter() - start
    success = np.array([r["success"] for r in rows], dtype=int)
    whole = np.array([r["success_whole_image"] for r in rows], dtype=int)
    ious = np.array([r["iou"] for r in rows])
    word_imacs = separation(np.array([r["imacs_words"] for r in rows]), success, whole, ious)
    # "smile" at its default budget, "smile@64" at the SMILE code's N (both reuse exact Shapley's images)
    runs = {"shapley": ("shapley", None), "smile": ("smile", None), "smile@64": ("smile", 64)}
    attribution: dict[str, list[float]] = {key: [] for key in runs}
    explained = [t for t in tasks if len(t[0].words) <= 8][:n_explain]
    embedder = make_embedder("efficientnet")
    for scene, index, box in explained:
        # composite: the explained image changes only inside the mask, where the ground truth lives
        adapter = EditAdapter(pipe, image=scene.render(), mask=box, num_inference_steps=DEFAULTS.num_inference_steps,
                              guidance_scale=EDIT_DEFAULTS.guidance_scale, composite=True)
        cache = GenerationCache()  # SMILE reuses exact Shapley's images
        for key, (method, budget) in runs.items():
            e = explain_prompt(adapter, scene.caption, method=method, seeds=1, embedder=embedder,
                               budget=budget, cache=cache)
            attribution[key].append(roc_auc(e.values, inpainted_relevance(scene, index)))
    return dict(n_inpaintings=n, success=float(success.mean()), success_whole_image=float(whole.mean()),
                mean_iou=float(ious.mean()), imacs_words=word_imacs, wall_s=round(wall, 1), rows=rows,
                captions=[t[0].caption for t in explained],
                attribution_auc={m: float(np.nanmean(v)) if v else float("nan") for m, v in attribution.items()})


def pix2pix_table(part: dict, args) -> list[str]:
    lines = []
    draw = "" if args.edit_draw == EDIT_DRAW else f" (draw {args.edit_draw})"
    image_guidance = "pipeline default 1.5" if args.image_guidance is None else args.image_guidance
    lines += [f"InstructPix2Pix: {part['n_edits']} held-out edits{draw}, guidance {args.guidance}, image guidance "
              f"{image_guidance}: success {part['success']:.1%} (checker reads the target caption).", "",
              "| edit kind | n | success |", "|---|---|---|"]
    lines += [f"| {k} | {part['n_by_kind'][k]} | {v:.1%} |" for k, v in sorted(part["success_by_kind"].items())]
    lines += ["", f"Instruction-word AUC on {len(part['instructions'])} explained instructions (2 sampler seeds, "
              f"{part['embedder']}, -L2); SMILE averaged over {part['explainer_seeds']} draws of its masks.", "",
              "| method | instruction-word AUC | per explainer seed |", "|---|---|---|"]
    lines += [f"| {m} | {v:.3f} | {', '.join(f'{a:.3f}' for a in part['attribution_auc_per_seed'][m])} |"
              for m, v in part["attribution_auc"].items()]
    if part["per_instruction"]:
        used: dict[str, list[int]] = {}
        for r in part["per_instruction"]:
            for w, rel, u in zip(r["words"], r["relevance"], r["filler_used"]):
                if not rel:
                    used.setdefault(w, []).append(u)
        lines += ["", "Fillers the model uses: a filler is *used* on an instruction when dropping it alone breaks "
                  "an edit that succeeds with the full instruction (checker, either sampler seed; exact "
                  "Shapley's images, no new generations).", "",
                  "| filler | occurrences | used on |", "|---|---|---|"]
        lines += [f"| {w} | {len(u)} | {sum(u)} |" for w, u in sorted(used.items(), key=lambda kv: -sum(kv[1]))]
        lines += ["", "AUC with the used fillers left out of each instruction:", "",
                  "| method | instruction-word AUC without used fillers |", "|---|---|"]
        lines += [f"| {m} | {v:.3f} |" for m, v in part["attribution_auc_without_used_fillers"].items()]
    return lines


def insertion_table(part: dict, args) -> list[str]:
    lines = []
    lines += [f"Paint-by-Example: {part['n_insertions']} held-out insertions, success {part['success']:.1%} "
              f"(source outside the box, generation inside; the whole generated image: "
              f"{part['success_whole_image']:.1%}), mean IoU {part['mean_iou']:.3f}.", "",
              "| map scored by IMACS (lambda 3, vs the mask) | ROC-AUC, success vs failure | same, whole image "
              "| success vs misplaced failures (IoU < 0.5) | success vs well-placed failures "
              "| Spearman with IoU | mean IMACS |", "|---|---|---|---|---|---|---|"]
    names = {"r2g": "I2AM reference-to-generated attention",
             "g2r": "I2AM generated-to-reference, encoder rollout (vs the reference object's mask)",
             "guidance": "guidance difference"}
    names.update({f"guidance_t{g}": f"guidance difference, time group {g} (0 = noisiest)" for g in range(10)})
    lines += [f"| {names[k]} | {v['success_auc']:.3f} | {v['whole_image_success_auc']:.3f} | "
              f"{v['misplaced_failure_auc']:.3f} | {v['well_placed_failure_auc']:.3f} | "
              f"{v['iou_spearman']:.3f} | {v['mean']:.3f} |" for k, v in part["imacs"].items()]
    lines += ["", f"Failures: {part['n_misplaced_failures']} misplaced (inserted object's IoU with the target "
              f"box < 0.5), {part['n_well_placed_failures']} well placed but wrong in colour, shape or size."]
    return lines


def inpainting_table(part: dict, args) -> list[str]:
    lines = []
    words = part["imacs_words"]
    lines += [f"Inpainting: {part['n_inpaintings']} held-out object boxes repainted from the caption, success "
              f"{part['success']:.1%} (source outside the box, generation inside; the whole generated image: "
              f"{part['success_whole_image']:.1%}), mean IoU {part['mean_iou']:.3f}.", "",
              "IMACS (lambda 3) of the masked object's words' cross-attention against the mask: ROC-AUC "
              f"{words['success_auc']:.3f} for success vs failure ({words['whole_image_success_auc']:.3f} on "
              f"the whole image), Spearman {words['iou_spearman']:.3f} with the IoU, mean {words['mean']:.3f}.", "",
              f"Caption-word AUC on {len(part['captions'])} of them (relevant: the masked object's colour, shape "
              "and size words):", "", "| method | caption-word AUC |", "|---|---|"]
    lines += [f"| {m} | {v:.3f} |" for m, v in part["attribution_auc"].items()]
    return lines


PARTS = ("pix2pix", "insertion", "inpainting")
TITLES = dict(pix2pix="InstructPix2Pix on held-out shapes edits", insertion="Paint-by-Example insertions and IMACS",
              inpainting="Inpainting held-out object boxes")


def run_part(name: str, args) -> dict:
    if name == "pix2pix":
        budgets = tuple(int(b) for b in args.smile_budgets.split(","))
        return pix2pix_part(args.pix2pix, args.edits, args.explain, budgets, args.edit_draw, args.guidance,
                            args.image_guidance, args.explainer_seeds, args.cache, args.embedder_size)
    if name == "insertion":
        return insertion_part(args.pbe, args.insertions, args.insertion_draw)
    return inpainting_part(args.inpaint, args.inpaintings, args.inpaint_explain, args.inpainting_draw)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pix2pix", default="instruct_pix2pix")
    parser.add_argument("--pbe", default="paint_by_example")
    parser.add_argument("--edits", type=int, default=64)
    parser.add_argument("--explain", type=int, default=12)
    parser.add_argument("--edit-draw", type=int, default=EDIT_DRAW,
                        help="seed of the held-out edits drawn for InstructPix2Pix (another value: a validation draw)")
    parser.add_argument("--guidance", type=float, default=EDIT_DEFAULTS.guidance_scale,
                        help="InstructPix2Pix text guidance")
    parser.add_argument("--image-guidance", type=float, default=None,
                        help="InstructPix2Pix image guidance (default: the pipeline's, 1.5)")
    parser.add_argument("--smile-budgets", default=str(SURROGATE_BUDGET),
                        help="comma-separated SMILE budgets on the explained instructions (the first is 'smile') "
                             f"[{SURROGATE_BUDGET}, SMILE's default]")
    parser.add_argument("--explainer-seeds", type=int, default=4,
                        help="SMILE's AUC is averaged over this many draws of its masks (no extra images)")
    parser.add_argument("--cache", default=":memory:",
                        help="generation cache file for the explained instructions: a re-run with other SMILE "
                             "budgets or draws costs no images")
    parser.add_argument("--embedder-size", type=int, default=None,
                        help="EfficientNet input side for the explained instructions [the library's default: "
                             "128 for these 64-px images]")
    parser.add_argument("--insertions", type=int, default=120)
    parser.add_argument("--insertion-draw", type=int, default=6160,
                        help="seed of the held-out scenes drawn for insertion (another value: a validation draw)")
    parser.add_argument("--inpaint", default="inpaint")
    parser.add_argument("--inpaintings", type=int, default=120)
    parser.add_argument("--inpaint-explain", type=int, default=8)
    parser.add_argument("--inpainting-draw", type=int, default=7170,
                        help="seed of the held-out scenes drawn for inpainting (another value: a validation draw)")
    parser.add_argument("--quick", action="store_true", help="4 edits, 1 explained, 6 insertions (smoke run)")
    parser.add_argument("--name", default=None, help="an ad-hoc run's name (written to runs/benchmarks/)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, among {PARTS}")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts must name some of {PARTS}, got {args.parts!r}")
    # the current result: every setting at its default (which parts and the cache file aside)
    current = vars(args) == vars(parser.parse_args(["--parts", args.parts, "--cache", args.cache]))
    if args.quick:
        args.edits, args.explain, args.insertions, args.inpaintings, args.inpaint_explain = 4, 1, 6, 6, 1
    torch.set_flush_denormal(True)
    models = dict(pix2pix=args.pix2pix, insertion=args.pbe, inpainting=args.inpaint)
    tables = dict(pix2pix=pix2pix_table, insertion=insertion_table, inpainting=inpainting_table)
    for name in parts:
        if not _available(models[name]):
            print(f"{name}: skipped, no weights for {models[name]!r}")
            continue
        part = run_part(name, args)
        lines = [f"# {TITLES[name]}", ""] + tables[name](part, args)
        write(f"{args.name or 'edits'}_{name}", {name: part, "machine": machine()}, "\n".join(lines) + "\n",
              current=current)


if __name__ == "__main__":
    main()
