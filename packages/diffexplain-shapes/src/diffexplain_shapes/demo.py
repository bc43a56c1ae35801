"""``diffexplain demo``: the main job on the embedded shapes model, offline, on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

DEMO_CAPTIONS = (
    "a big yellow circle on the left",
    "a small purple square at the top",
    "an image of a big orange triangle in the centre",
    "a big yellow circle on the left and a small blue square on the right",
    "a red square at the bottom with a big purple square at the top",
    "a small orange triangle on the right on a black background",
    "a green circle at the top and a yellow circle at the bottom",
    "there is a big purple square on the left with a small red circle on the right",
)


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def command(out: Path, seed: int) -> None:
    """The main job on the built-in shapes model: generate held-out captions and check them against
    their text, then explain one caption's words (KernelSHAP + cross-attention) against ground truth."""
    from PIL import Image
    from rich.console import Console
    from rich.table import Table

    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.report.figures import image_grid

    from . import check
    from . import pipelines as shapes

    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    adapter = TextToImageAdapter(shapes.load("text2image"))
    console.print(f"[bold]diffexplain demo[/] - built-in shapes model, {len(DEMO_CAPTIONS)} held-out captions, "
                  f"seed {seed}")
    arrays = adapter.generate(list(DEMO_CAPTIONS), [seed] * len(DEMO_CAPTIONS))
    images = [Image.fromarray(a) for a in arrays]
    table = Table("caption", "colour", "count", "shape", "size", "position")
    rows = []
    for index, (caption, image) in enumerate(zip(DEMO_CAPTIONS, images)):
        image.save(out / f"sample_{index}.png")
        result = check(image, caption)
        verdicts = {a: getattr(result, a) for a in ("colour", "count", "shape", "size", "position")}
        rows.append(dict(caption=caption, image=f"sample_{index}.png", **verdicts))
        table.add_row(caption, *("-" if v is None else ("ok" if v else "[red]wrong[/]") for v in verdicts.values()))
    image_grid(images, columns=4, scale=3, labels=list(DEMO_CAPTIONS)).save(out / "samples.png")
    console.print(table)

    # Which words drive the image, and where they land: one held-out caption, scored against the
    # world's ground truth (content words relevant, filler words not).

    from diffexplain.attention import record_prompt
    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import explain_prompt
    from diffexplain.metrics import roc_auc
    from diffexplain.report.html import attention_section, explanation_report

    from . import sample_scene

    scene = next(s for s in (sample_scene(np.random.default_rng(seed + i), split="heldout") for i in range(100))
                 if 6 <= len(s.words) <= 9 and s.relevance.min() == 0)
    console.print(f"\nexplaining [bold]{scene.caption!r}[/] (KernelSHAP, 2 seeds)")
    cache = GenerationCache(out / "cache.sqlite")
    explanation = explain_prompt(adapter, scene.caption, method="kernelshap", seeds=2, cache=cache, sampler_seed=seed)
    explanation.save(out / "explanation")
    image, maps = record_prompt(adapter, scene.caption, explanation.settings["seeds"][0])
    maps.save(out / "explanation")
    explanation_report(explanation, out / "explanation" / "report.html", cache=cache,
                       extra_sections=[attention_section(maps, image, views=("time", "layer"))])
    auc = roc_auc(explanation.values, scene.relevance)
    words = Table("word", "role", "attribution", "std. error")
    for word, value, error in zip(scene.words, explanation.values, explanation.stderr):
        words.add_row(word.text, word.role, f"{value:+.4f}", f"{error:.4f}")
    console.print(words)
    console.print(f"content words ranked above filler words: AUC {auc:.2f} (1 = perfect); "
                  f"{explanation.n_generations} images")
    flux_summary = _flux_section(console, out, seed, scene, cache)
    edit_summary = _edit_section(console, out, seed)
    insertion_summary = _insertion_section(console, out, seed)
    inpainting_summary = _inpainting_section(console, out, seed)
    (out / "demo.json").write_text(json.dumps(dict(seed=seed, samples=rows, explained=scene.caption, auc=auc,
                                                   flux=flux_summary,
                                                   edit=edit_summary, insertion=insertion_summary,
                                                   inpainting=inpainting_summary),
                                              indent=2) + "\n")
    console.print(f"wrote {out}/samples.png, {out}/demo.json, {out}/explanation/report.html, "
                  f"{out}/flux_explanation/report.html, "
                  f"{out}/edit.png, {out}/insertion.png and {out}/inpainting.png")


def _flux_section(console, out: Path, seed: int, scene, cache) -> dict:
    """The same caption on the shapes Flux.1 model (a transformer: joint attention, T5): KernelSHAP
    against the world's truth, and where the colour words land in both attention views."""
    from diffexplain.attention import record_prompt
    from diffexplain.explain.api import explain_prompt
    from diffexplain.metrics import roc_auc
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.report.html import attention_section, explanation_report

    from . import pipelines as shapes

    adapter = TextToImageAdapter(shapes.load("flux"))
    console.print(f"\n[bold]Flux.1[/] (shapes, from scratch) on {scene.caption!r} (KernelSHAP, 2 seeds)")
    explanation = explain_prompt(adapter, scene.caption, method="kernelshap", seeds=2, cache=cache, sampler_seed=seed)
    explanation.save(out / "flux_explanation")
    auc = roc_auc(explanation.values, scene.relevance)
    image, maps = record_prompt(adapter, scene.caption, explanation.settings["seeds"][0])
    _, output = record_prompt(adapter, scene.caption, explanation.settings["seeds"][0], view="output")
    explanation_report(explanation, out / "flux_explanation" / "report.html", cache=cache,
                       extra_sections=[attention_section(maps, image, views=("time", "layer")),
                                       attention_section(output, image, views=("layer",))])
    console.print("  " + "  ".join(f"{w}:{v:+.2f}" for w, v in zip(explanation.features, explanation.values)))
    console.print(f"  content words above filler words: AUC {auc:.2f}; both attention views (joint softmax, "
                  "ConceptAttention's output space) in the report")
    return dict(auc=auc, n_generations=explanation.n_generations)


def _edit_section(console, out: Path, seed: int) -> dict:
    """The built-in InstructPix2Pix on one held-out edit, and which instruction words drive it."""
    from PIL import Image

    from diffexplain.cache import GenerationCache
    from diffexplain.explain.api import explain_prompt
    from diffexplain.metrics import roc_auc
    from diffexplain.models.edit_adapter import EditAdapter
    from diffexplain.report.figures import image_grid

    from . import check
    from . import pipelines as shapes
    from .edits import sample_edit

    rng = np.random.default_rng(seed)
    edit = next(e for e in (sample_edit(rng, split="heldout") for _ in range(200))
                if 5 <= len(e.words) <= 7 and e.relevance.min() == 0 and e.kind == "recolour")
    adapter = EditAdapter(shapes.load("instruct_pix2pix"), image=edit.source.render())
    edited = adapter.generate([edit.instruction], [seed])[0]
    verdict = check(edited, edit.target.caption)
    done = verdict.edit_ok
    image_grid([Image.fromarray(edit.source.render()), Image.fromarray(edited)], columns=2, scale=3,
               labels=["source", f"edited: {edit.instruction}"]).save(out / "edit.png")
    console.print(f"\n[bold]edit[/] {edit.instruction!r} on {edit.source.caption!r}: "
                  f"{'done' if done else '[red]not done[/]'} (checker reads {edit.target.caption!r})")
    explanation = explain_prompt(adapter, edit.instruction, method="kernelshap", seeds=1,
                                 cache=GenerationCache(out / "cache.sqlite"), sampler_seed=seed)
    explanation.save(out / "edit_explanation")
    auc = roc_auc(explanation.values, edit.relevance)
    console.print("  " + "  ".join(f"{w}:{v:+.2f}" for w, v in zip(explanation.features, explanation.values)))
    console.print(f"  instruction content words above filler words: AUC {auc:.2f}")
    return dict(instruction=edit.instruction, source=edit.source.caption, target=edit.target.caption, done=done,
                features=list(explanation.features), values=[float(v) for v in explanation.values], auc=auc)


def _insertion_section(console, out: Path, seed: int) -> dict:
    """The built-in Paint-by-Example inserting a held-out object, with I2AM and guidance maps."""
    import torch
    from PIL import Image

    from diffexplain.attention.maps import overlay
    from diffexplain.image2image.i2am import i2am_paint_by_example
    from diffexplain.models.edit_adapter import PaintByExampleAdapter
    from diffexplain.report.figures import image_grid

    from . import check, sample_scene
    from . import pipelines as shapes
    from .tasks import box_mask, reference_crop, reference_object_mask

    scene = sample_scene(np.random.default_rng(seed + 1), split="heldout")
    index = 0
    box = box_mask(scene, index)
    adapter = PaintByExampleAdapter(shapes.load("paint_by_example"), image=scene.render(), mask=box,
                                    reference=reference_crop(scene, index), composite=True)
    result = i2am_paint_by_example(adapter, seed=seed, reference_mask=reference_object_mask(scene, index))
    verdict = check(result.image, scene.caption)
    done = verdict.edit_ok
    tiles = [adapter.source, (box[..., None].repeat(3, axis=2) * 255).astype(np.uint8), adapter.reference,
             result.image, overlay(result.image, torch.from_numpy(result.r2g)),
             overlay(result.image, torch.from_numpy(result.guidance)),
             overlay(adapter.reference, torch.from_numpy(result.g2r))]
    image_grid([Image.fromarray(t) for t in tiles], columns=7, scale=3,
               labels=["source", "mask", "reference", "generated", "reference to generated (I2AM)",
                       "guidance difference", "generated to reference (I2AM)"]).save(out / "insertion.png")
    console.print(f"\n[bold]insertion[/] of the {scene.objects[index].colour} {scene.objects[index].shape} into "
                  f"{scene.caption!r}: {'done' if done else '[red]not done[/]'}; IMACS of I2AM's "
                  f"reference-to-generated map {result.imacs_r2g:+.2f}, of the guidance difference "
                  f"{result.imacs_guidance:+.2f}, of generated-to-reference vs the reference object "
                  f"{result.imacs_g2r:+.2f}")
    return dict(scene=scene.caption, object=index, done=done, imacs_r2g=result.imacs_r2g,
                imacs_guidance=result.imacs_guidance, imacs_g2r=result.imacs_g2r)


def _inpainting_section(console, out: Path, seed: int) -> dict:
    """The built-in inpainting model repainting a held-out object's box from the caption, with the
    masked object's words' cross-attention scored by IMACS against the mask."""
    from PIL import Image

    from diffexplain.attention import record_prompt
    from diffexplain.attention.maps import overlay
    from diffexplain.metrics import imacs
    from diffexplain.models.edit_adapter import EditAdapter
    from diffexplain.report.figures import image_grid

    from . import check, sample_scene
    from . import pipelines as shapes
    from .edits import inpainted_relevance
    from .tasks import box_mask

    scene = sample_scene(np.random.default_rng(seed + 2), split="heldout")
    index = 0
    box = box_mask(scene, index)
    adapter = EditAdapter(shapes.load("inpaint"), image=scene.render(), mask=box)
    image, maps = record_prompt(adapter, scene.caption, seed)
    pasted = adapter.paste(image[None])[0]
    done = check(pasted, scene.caption).edit_ok
    words = np.flatnonzero(inpainted_relevance(scene, index))  # colour, shape and size: as the benchmark
    layers = maps.layers_at_least(adapter.defaults.attention_min_grid)
    heat = sum(maps.word_heatmap(int(i), layers=layers) for i in words) / len(words)
    score = imacs(heat.numpy(), box, 3.0)
    tiles = [adapter.source, (box[..., None].repeat(3, axis=2) * 255).astype(np.uint8), pasted, overlay(image, heat)]
    image_grid([Image.fromarray(t) for t in tiles], columns=4, scale=3,
               labels=["source", "mask", "repainted (pasted)", "masked object's words' attention"]).save(
        out / "inpainting.png")
    obj = scene.objects[index]
    console.print(f"\n[bold]inpainting[/] the {obj.colour} {obj.shape}'s box of {scene.caption!r} from the caption: "
                  f"{'done' if done else '[red]not done[/]'}; IMACS of its colour, shape and size words' attention "
                  f"{score:+.2f}")
    return dict(scene=scene.caption, object=index, done=done, imacs_words=score)
