import numpy as np
import pytest
import torch

from diffexplain.embed import (
    DEFAULT_EMBEDDER,
    EfficientNetEmbedder,
    LatentEmbedder,
    PixelEmbedder,
    efficientnet_size,
    make_embedder,
)
from diffexplain_shapes import Scene, ShapeObject


def _images():
    red = Scene(objects=(ShapeObject("red", "circle", "big", "left", 15.0, 32.0),)).render()
    red_moved = Scene(objects=(ShapeObject("red", "circle", "big", "left", 17.0, 32.0),)).render()
    blue = Scene(objects=(ShapeObject("blue", "square", "big", "right", 49.0, 32.0),)).render()
    return np.stack([red, red_moved, blue])


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_pixel_embedder_is_area_averaged_pixels():
    images = _images()
    vectors = PixelEmbedder(4).embed(images)
    assert vectors.shape == (3, 3 * 4 * 4) and vectors.dtype == np.float32
    block = images[0, :16, :16].reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(vectors[0].reshape(3, 4, 4)[:, 0, 0], block, atol=1e-6)


def test_efficientnet_embedder_uses_real_imagenet_weights():
    embedder = EfficientNetEmbedder()
    vectors = embedder.embed(_images())
    assert vectors.shape == (3, 1280)
    # a slightly moved object is closer than a different object of another colour
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2])
    # real weights, not a random init: features are sparse (ReLU6) and reproducible
    assert np.array_equal(vectors, EfficientNetEmbedder().embed(_images()))


def test_embed_runs_in_batches_with_the_same_result():
    images = np.concatenate([_images()] * 3)  # 9 images: batches of 4, 4 and 1
    embedder = make_embedder("efficientnet", image_size=64)
    whole = embedder.embed(images)
    embedder.batch_size = 4
    np.testing.assert_allclose(embedder.embed(images), whole, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(images[:1])[0], whole[3], rtol=1e-4, atol=1e-5)
    pixel = PixelEmbedder(4)
    pixel.batch_size = 2
    assert np.array_equal(pixel.embed(images), PixelEmbedder(4).embed(images))


def test_efficientnet_image_size_is_in_the_name_and_changes_the_embedding():
    small = make_embedder("efficientnet", image_size=128)
    assert (small.name, EfficientNetEmbedder().name) == ("efficientnet-lite0-128", "efficientnet-lite0")
    vectors = small.embed(_images())
    assert vectors.shape == (3, 1280)
    assert not np.allclose(vectors, EfficientNetEmbedder().embed(_images()))
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2])


def test_latent_embedder_uses_the_pipeline_vae(tmp_path):
    from tests.helpers import tiny_text2image

    pipe, _, _ = tiny_text2image(tmp_path)
    embedder = make_embedder("latent", pipe=pipe)
    assert isinstance(embedder, LatentEmbedder)
    images = _images()[:, ::4, ::4]  # 16x16 for the tiny VAE
    vectors = embedder.embed(np.ascontiguousarray(images))
    assert vectors.shape == (3, 4 * 8 * 8)


def _tiny_clip(path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)


def _tiny_dinov2(path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          image_size=32, patch_size=8)
    Dinov2Model(config).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(path)


@pytest.mark.parametrize("kind,build,dim", [("clip", _tiny_clip, 16), ("dinov2", _tiny_dinov2, 32)])
def test_transformers_embedders_load_from_a_local_directory(tmp_path, kind, build, dim):
    build(tmp_path)
    embedder = make_embedder(kind, path=str(tmp_path))
    vectors = embedder.embed(_images())
    assert vectors.shape == (3, dim) and np.isfinite(vectors).all()
    x = torch.from_numpy(_images()).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    embedder.embed_tensor(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_efficientnet_input_side_follows_the_image_side():
    assert [efficientnet_size(s) for s in (8, 16, 64, 100, 112, 512)] == [32, 32, 128, 200, 224, 224]
    assert DEFAULT_EMBEDDER == "efficientnet"
    assert make_embedder("efficientnet", image_side=64).image_size == 128
    assert make_embedder("efficientnet", image_side=64).name == "efficientnet-lite0-128"
    # an explicit size wins; without a side it is ImageNet's 224
    assert make_embedder("efficientnet", image_size=96, image_side=64).image_size == 96
    assert make_embedder("efficientnet").image_size == 224
    assert isinstance(make_embedder("pixel", image_side=64), PixelEmbedder)  # a hint, not an error
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="side must be a positive integer"):
            efficientnet_size(bad)


def test_embedder_errors():
    with pytest.raises(ValueError, match="embedder must be one of"):
        make_embedder("vgg")
    with pytest.raises(ValueError, match="local model path"):
        make_embedder("dinov2")
    with pytest.raises(ValueError, match="local directory"):
        make_embedder("clip", path="not-a-dir")
    with pytest.raises(ValueError, match="image_size"):
        make_embedder("pixel", image_size=128)
    with pytest.raises(ValueError, match="image_size must be an integer >= 32, got 8"):
        EfficientNetEmbedder(8)
    with pytest.raises(ValueError, match="uint8"):
        PixelEmbedder().embed(np.zeros((1, 8, 8, 3), dtype=np.float32))
