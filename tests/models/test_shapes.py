import numpy as np
import pytest
import torch

from diffexplain.models import shapes
from diffexplain.models.generate import generate_images
from diffexplain.world import vocabulary
from tests.helpers import tiny_text2image


def test_tokenizer_gives_one_token_per_world_word(tmp_path):
    tokenizer = shapes.build_tokenizer(tmp_path)
    ids = tokenizer("a big red circle on the left").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert len(ids) == 7 + 2
    assert tokenizer.model_max_length == shapes.MAX_TOKENS
    assert len({tokenizer(w, add_special_tokens=False).input_ids[0] for w in vocabulary()}) == len(vocabulary())


def test_save_pretrained_round_trip_gives_identical_images(tmp_path):
    loaded, original, _ = tiny_text2image(tmp_path)
    original.set_progress_bar_config(disable=True)
    kwargs = dict(seeds=[3], num_inference_steps=3, guidance_scale=2.0, output_type="pt")
    a = generate_images(original, ["a red circle"], **kwargs)
    b = generate_images(loaded, ["a red circle"], **kwargs)
    assert a.shape == (1, 3, 16, 16)
    assert torch.equal(a, b)


def test_same_seed_same_image_other_seed_other_image(tmp_path):
    pipe, _, _ = tiny_text2image(tmp_path)
    kwargs = dict(num_inference_steps=3, guidance_scale=2.0, output_type="pt")
    a = generate_images(pipe, ["a red circle"], seeds=[1], **kwargs)
    b = generate_images(pipe, ["a red circle"], seeds=[1], **kwargs)
    c = generate_images(pipe, ["a red circle"], seeds=[2], **kwargs)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_batch_members_depend_only_on_their_own_seed(tmp_path):
    pipe, _, _ = tiny_text2image(tmp_path)
    kwargs = dict(num_inference_steps=3, guidance_scale=2.0, output_type="pt")
    batch = generate_images(pipe, ["a red circle", "a blue square"], seeds=[5, 6], **kwargs)
    alone = generate_images(pipe, ["a blue square"], seeds=[6], **kwargs)
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=0)


def test_generate_validates_arguments(tmp_path):
    pipe, _, _ = tiny_text2image(tmp_path)
    with pytest.raises(ValueError, match="same length"):
        generate_images(pipe, ["a", "b"], seeds=[1], num_inference_steps=2, guidance_scale=1.0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        generate_images(pipe, ["a"], seeds=[1], num_inference_steps=0, guidance_scale=1.0)


def test_unknown_pipeline_name():
    with pytest.raises(ValueError, match="name must be one of"):
        shapes.load("nope")


def test_shipped_text2image_loads_offline_and_is_deterministic(shapes_pipe):
    record = shapes.training_record("text2image")
    assert record["unet_steps"] > 0
    kwargs = dict(num_inference_steps=shapes.DEFAULT_STEPS, guidance_scale=shapes.DEFAULT_GUIDANCE)
    a = generate_images(shapes_pipe, ["a big red circle on the left"], seeds=[0], **kwargs)
    b = generate_images(shapes_pipe, ["a big red circle on the left"], seeds=[0], **kwargs)
    assert a[0].size == (64, 64)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
