import numpy as np
import pytest

from diffexplain.attention.regions import match_regions, segment
from diffexplain.embed import PixelEmbedder
from diffexplain_shapes import Scene, ShapeObject


def _scene():
    return Scene(objects=(ShapeObject("red", "circle", "big", "left", 15.0, 32.0),
                          ShapeObject("blue", "square", "big", "right", 49.0, 32.0)))


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
def test_superpixels_separate_the_objects_of_a_hand_made_scene(method):
    scene = _scene()
    labels = segment(scene.render(), method, n_segments=6)
    assert labels.shape == (64, 64) and labels.min() == 0
    for mask in scene.masks():
        # the region covering most of each object holds at least 80% of it
        covering = np.bincount(labels[mask]).max()
        assert covering >= 0.8 * mask.sum()


def test_words_find_their_object_region_by_attention_and_by_embedding():
    scene = _scene()
    masks = scene.masks()
    labels = np.zeros((64, 64), np.int64)
    labels[masks[0]] = 1
    labels[masks[1]] = 2
    # heatmaps: 'red' concentrated on the circle, 'square' on the square, 'a' uniform
    heatmaps = np.stack([np.ones((64, 64)), masks[0] + 0.05, masks[1] + 0.05]).astype(float)
    word_images = np.stack([
        np.full((64, 64, 3), 255, np.uint8),
        Scene(objects=(scene.objects[0],)).render(),
        Scene(objects=(scene.objects[1],)).render(),
    ])
    match = match_regions(labels, heatmaps, ["a", "red", "square"], image=scene.render(),
                          word_images=word_images, embedder=PixelEmbedder(16))
    assert match.best_region.tolist()[1:] == [1, 2]
    assert match.best_word.tolist()[1:] == [1, 2]
    assert match.attention_scores[1, 1] > 5  # far above chance (1)
    assert match.embedding_scores[1].argmax() == 1 and match.embedding_scores[2].argmax() == 2


def test_kmeans_over_attention_and_bad_input():
    scene = _scene()
    masks = scene.masks().astype(float)
    labels = segment(scene.render(), "kmeans_attention", n_segments=3, heatmaps=masks)
    for mask in scene.masks():
        assert len(np.unique(labels[mask])) == 1
    with pytest.raises(ValueError, match="needs heatmaps"):
        segment(scene.render(), "kmeans_attention")
    with pytest.raises(ValueError, match="sam_path must be an existing local directory"):
        segment(scene.render(), "sam", sam_path="/nonexistent/sam")
    with pytest.raises(ValueError, match="method must be one of"):
        segment(scene.render(), "watershed")


def test_sam_segmenter_runs_from_a_local_tiny_random_model(tmp_path):
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             image_size=64, patch_size=8, window_size=4, global_attn_indexes=(1,), mlp_dim=64,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16)
    model = SamModel(SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                               mask_decoder_config=decoder.to_dict()))
    processor = SamProcessor(SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16}))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    labels = segment(_scene().render(), "sam", sam_path=str(tmp_path))
    assert labels.shape == (64, 64) and labels.min() == 0
