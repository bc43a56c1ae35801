import numpy as np
import pytest
from PIL import Image

from diffexplain.explain.api import explain_prompt
from diffexplain.models.edit_adapter import EditAdapter, PaintByExampleAdapter, load_image, load_mask
from tests.helpers import tiny_image_pipeline, tiny_paint_by_example


def _source(height=16, width=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _mask(height=16, width=16):
    mask = np.zeros((height, width), bool)
    mask[4:12, 4:12] = True
    return mask


@pytest.mark.parametrize("kind,kwargs", [
    ("pix2pix", dict(image_guidance_scale=1.5)),
    ("img2img", dict(strength=0.75)),
    ("inpaint", dict(mask=_mask())),
])
def test_edit_adapters_keep_the_source_fixed_across_coalitions(tmp_path, kind, kwargs):
    pipe = tiny_image_pipeline(tmp_path, kind)
    adapter = EditAdapter(pipe, image=_source(), num_inference_steps=3, guidance_scale=2.0, **kwargs)
    seen = []
    original = pipe.__call__

    class Spy:
        def __call__(self, *args, **call_kwargs):
            seen.append(np.asarray(call_kwargs["image"][0]))
            return original(*args, **call_kwargs)

    pipe.__class__ = type("Spied", (type(pipe),), {"__call__": Spy().__call__})
    explanation = explain_prompt(adapter, "make the red circle blue", method="kernelshap", seeds=1, budget=8)
    assert explanation.n_generations == 8
    assert seen and all(np.array_equal(s, _source()) for s in seen)
    assert explanation.settings["source_sha256"]
    same = adapter.generate(["make the circle blue"], [3])
    assert np.array_equal(same, adapter.generate(["make the circle blue"], [3]))


def test_img2img_turbo_style_single_step(tmp_path):
    pipe = tiny_image_pipeline(tmp_path, "img2img")
    adapter = EditAdapter(pipe, image=_source(), strength=1.0, num_inference_steps=1, guidance_scale=0.0)
    assert adapter.generate(["a red circle"], [0]).shape == (1, 16, 16, 3)


def test_paint_by_example_adapter(tmp_path):
    pipe = tiny_paint_by_example(tmp_path)
    adapter = PaintByExampleAdapter(pipe, image=_source(), mask=_mask(), reference=_source(8, 8),
                                    num_inference_steps=2)
    images = adapter.generate([0, 0, 1])
    assert images.shape == (3, 16, 16, 3)
    assert np.array_equal(images[0], images[1]) and not np.array_equal(images[0], images[2])
    composite = PaintByExampleAdapter(pipe, image=_source(), mask=_mask(), reference=_source(8, 8),
                                      num_inference_steps=2, composite=True).generate([0])[0]
    mask = adapter.mask
    assert np.array_equal(composite[~mask], adapter.source[~mask])  # the source outside the mask
    assert np.array_equal(composite[mask], images[0][mask])  # the generation inside it
    assert np.array_equal(adapter.paste(images[:1])[0], composite)
    with pytest.raises(ValueError, match="composite must be True or False"):
        PaintByExampleAdapter(pipe, image=_source(), mask=_mask(), reference=_source(8, 8), composite="yes")


def test_bad_inputs_are_clear_errors(tmp_path):
    inpaint = tiny_image_pipeline(tmp_path, "inpaint")
    with pytest.raises(ValueError, match="a mask is required"):
        EditAdapter(inpaint, image=_source())
    with pytest.raises(ValueError, match="source image's size"):
        EditAdapter(inpaint, image=_source(), mask=_mask(8, 8))
    with pytest.raises(ValueError, match="could not be read"):
        EditAdapter(inpaint, image=tmp_path / "missing.png", mask=_mask())
    (tmp_path / "not-an-image.png").write_text("hello")
    with pytest.raises(ValueError, match="could not be read"):
        load_image(tmp_path / "not-an-image.png")
    pix2pix = tiny_image_pipeline(tmp_path / "p", "pix2pix")
    with pytest.raises(ValueError, match="takes no mask"):
        EditAdapter(pix2pix, image=_source(), mask=_mask())
    pbe = tiny_paint_by_example(tmp_path / "pbe")
    with pytest.raises(ValueError, match="needs a reference image"):
        PaintByExampleAdapter(pbe, image=_source(), mask=_mask(), reference=None)
    with pytest.raises(ValueError, match="needs a mask"):
        PaintByExampleAdapter(pbe, image=_source(), mask=None, reference=_source())


def test_non_binary_masks_are_thresholded_at_a_documented_level(tmp_path):
    grey = np.zeros((4, 4), np.uint8)
    grey[0, 0], grey[0, 1] = 200, 100  # 0.78 and 0.39
    mask = load_mask(grey, (4, 4))
    assert mask[0, 0] and not mask[0, 1] and mask.sum() == 1
    Image.fromarray(grey).save(tmp_path / "m.png")
    assert np.array_equal(load_mask(tmp_path / "m.png", (4, 4), threshold=0.3), grey / 255 >= 0.3)


def test_distances_can_be_measured_against_the_source_image(tmp_path):
    pipe = tiny_image_pipeline(tmp_path, "pix2pix")
    adapter = EditAdapter(pipe, image=_source(), image_guidance_scale=1.5, num_inference_steps=2,
                          guidance_scale=2.0)
    to_edit = explain_prompt(adapter, "make the circle blue", method="shapley", seeds=1)
    to_source = explain_prompt(adapter, "make the circle blue", method="shapley", seeds=1, reference="source")
    assert to_edit.full_value == pytest.approx(0.0, abs=1e-6)  # the unperturbed edit is its own reference (-L2)
    assert to_source.full_value < 0.0
    assert to_source.settings["reference"] == "source"
    from diffexplain.models.adapter import TextToImageAdapter
    from tests.helpers import tiny_text2image

    plain = TextToImageAdapter(tiny_text2image(tmp_path / "t2i")[0], num_inference_steps=2)
    with pytest.raises(ValueError, match="needs an adapter with a source image"):
        explain_prompt(plain, "a red circle", method="shapley", reference="source")


def test_inpainting_composite_keeps_the_source_outside_the_mask(tmp_path):
    pipe = tiny_image_pipeline(tmp_path, "inpaint")
    plain = EditAdapter(pipe, image=_source(), mask=_mask(), num_inference_steps=2)
    pasted = EditAdapter(pipe, image=_source(), mask=_mask(), num_inference_steps=2, composite=True)
    a, b = plain.generate(["a red circle"], [3])[0], pasted.generate(["a red circle"], [3])[0]
    inside = pasted.mask
    assert np.array_equal(b[inside], a[inside]) and np.array_equal(b[~inside], pasted.source[~inside])
    assert not np.array_equal(a[~inside], plain.source[~inside])  # the pipeline redraws outside the mask
    assert pasted.settings()["composite"] and plain.fingerprint == pasted.fingerprint
    assert plain.settings() != pasted.settings()  # so the generation cache keeps them apart
    with pytest.raises(ValueError, match="takes no mask"):
        EditAdapter(tiny_image_pipeline(tmp_path, "pix2pix"), image=_source(), composite=True)
