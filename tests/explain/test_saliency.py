import numpy as np
import pytest
import torch

from diffexplain.embed import PixelEmbedder
from diffexplain.explain.saliency import denoise, pixel_saliency, token_saliency
from diffexplain.models.adapter import TextToImageAdapter
from diffexplain_shapes import Scene, ShapeObject
from tests.helpers import tiny_text2image


def _scene_images(height=64, width=64):
    red = ShapeObject("red", "circle", "big", "left", 15.0, 32.0)
    blue = ShapeObject("blue", "square", "big", "right", 49.0, 32.0)
    both = Scene(objects=(red, blue)).render(height, width)
    red_only = Scene(objects=(red,)).render(height, width)
    return both, red_only


def test_integrated_gradients_are_complete():
    image, target = _scene_images()
    embedder = PixelEmbedder(8)
    saliency, per_channel = pixel_saliency(embedder, image, target, method="integrated_gradients",
                                           baseline="white", n_samples=64)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    goal = embedder.embed_tensor(torch.from_numpy(target).permute(2, 0, 1)[None].float() / 255)
    f = torch.nn.functional.cosine_similarity
    expected = float(f(embedder.embed_tensor(x), goal) - f(embedder.embed_tensor(torch.ones_like(x)), goal))
    assert per_channel.sum() == pytest.approx(expected, rel=0.02)
    assert saliency.shape == (64, 64)


def test_pixel_saliency_marks_what_differs_from_the_word_image_and_keeps_orientation():
    image, target = _scene_images(height=32, width=64)
    saliency, _ = pixel_saliency(PixelEmbedder(16), image, target, method="gradient")
    assert saliency.shape == (32, 64)
    # the blue square (right half) is what the word-alone image lacks: it gets the most saliency
    assert saliency[:, 32:].sum() > 2 * saliency[:, :32].sum()
    smooth, _ = pixel_saliency(PixelEmbedder(16), image, target, method="smoothgrad", n_samples=4)
    assert smooth.shape == (32, 64) and np.isfinite(smooth).all()
    with pytest.raises(ValueError, match="baseline must be one of"):
        pixel_saliency(PixelEmbedder(16), image, target, baseline="grey")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    pipe, _, _ = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return TextToImageAdapter(pipe, num_inference_steps=3, guidance_scale=2.0)


def test_manual_loop_reproduces_the_pipeline(adapter):
    with torch.no_grad():
        image = denoise(adapter.pipe, adapter.encode(["a red circle"]), adapter.encode([""]), seed=3,
                        num_inference_steps=3, guidance_scale=2.0, last_k=1, height=16, width=16)
    expected = adapter.generate(["a red circle"], [3])[0]
    got = (image[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - expected).max() <= 1


def test_token_saliency_sums_to_the_change_from_the_empty_prompt(adapter):
    out = token_saliency(adapter, "a big red circle", PixelEmbedder(8), method="integrated_gradients",
                         n_samples=16, last_k=3)
    assert out["words"] == ["a", "big", "red", "circle"] and out["values"].shape == (4,)
    assert out["f_prompt"] == pytest.approx(1.0, abs=1e-5)
    assert out["values"].sum() == pytest.approx(out["f_prompt"] - out["f_baseline"], rel=0.25, abs=1e-3)
    assert all(p.requires_grad for p in adapter.pipe.unet.parameters())  # flags restored
    with pytest.raises(ValueError, match="last_k"):
        token_saliency(adapter, "a red circle", PixelEmbedder(8), last_k=9)
