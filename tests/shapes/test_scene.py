import numpy as np
import pytest

from diffexplain_shapes import (
    COLOURS,
    Scene,
    ShapeObject,
    check,
    check_vocabulary,
    is_held_out,
    parse_caption,
    sample_scene,
    vocabulary,
)


def _two_object_scene():
    return Scene(
        objects=(
            ShapeObject("red", "circle", "big", "left", 15.0, 32.0, name_size=True, name_position=True),
            ShapeObject("blue", "square", "small", "right", 49.0, 32.0, name_size=False, name_position=False),
        ),
        background="gray", prefix=("a", "picture", "of"), joiners=("and",), name_background=True,
    )


def test_caption_roles_and_relevance_on_a_hand_checked_scene():
    scene = _two_object_scene()
    assert scene.caption == "a picture of a big red circle on the left and a blue square on a gray background"
    roles = [(w.text, w.role, w.object_index) for w in scene.words]
    assert roles == [
        ("a", "filler", None), ("picture", "filler", None), ("of", "filler", None),
        ("a", "filler", None), ("big", "size", 0), ("red", "colour", 0), ("circle", "shape", 0),
        ("on", "filler", None), ("the", "filler", None), ("left", "position", 0),
        ("and", "filler", None), ("a", "filler", None), ("blue", "colour", 1), ("square", "shape", 1),
        ("on", "filler", None), ("a", "filler", None), ("gray", "background", None),
        ("background", "background", None),
    ]
    assert scene.relevance.tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1]


def test_masks_are_exact_geometry():
    scene = _two_object_scene()
    masks = scene.masks()
    assert masks.shape == (2, 64, 64)
    circle, square = masks
    # circle of radius 11 centred at (15, 32): pixel centres inside the disc only
    yy, xx = np.mgrid[0:64, 0:64]
    expected = (xx + 0.5 - 15) ** 2 + (yy + 0.5 - 32) ** 2 <= 11 ** 2
    assert np.array_equal(circle, expected)
    assert abs(circle.sum() - np.pi * 121) < 12
    # square half-side 0.9 * 7 = 6.3 around (49, 32): columns 43..54, rows 26..37
    assert square.sum() == 12 * 12
    assert square[26:38, 43:55].all()
    assert not (circle & square).any()
    image = scene.render()
    assert (image[circle] == COLOURS["red"]).all()
    assert (image[square] == COLOURS["blue"]).all()
    assert (image[~(circle | square)] == (128, 128, 128)).all()


def test_triangle_points_up_and_masks_scale_to_non_square_sizes():
    tri = ShapeObject("green", "triangle", "big", "centre", 32.0, 32.0)
    mask = tri.mask()
    widths = mask.sum(axis=1)
    rows = np.flatnonzero(widths)
    assert widths[rows[0]] < widths[rows[-1]]  # narrow apex on top, wide base at the bottom
    wide = tri.mask(height=64, width=128)
    assert wide.shape == (64, 128)
    assert abs(wide.sum() - 2 * mask.sum()) <= 0.05 * 2 * mask.sum()


def test_word_masks_point_at_the_named_object():
    scene = _two_object_scene()
    masks = scene.masks()
    word_masks = scene.word_masks()
    for word, wm in zip(scene.words, word_masks):
        if word.object_index is None:
            assert wm is None
        else:
            assert np.array_equal(wm, masks[word.object_index])


def test_held_out_rule_and_split():
    assert [(c, s) for c in COLOURS for s in ("circle", "square", "triangle") if is_held_out(c, s)] == [
        ("yellow", "circle"), ("purple", "square"), ("orange", "triangle")]
    rng = np.random.default_rng(0)
    train = [sample_scene(rng, split="train") for _ in range(200)]
    held = [sample_scene(rng, split="heldout") for _ in range(50)]
    assert not any(s.held_out for s in train)
    assert all(s.held_out for s in held)
    # every colour and every shape still occurs in training
    assert {o.colour for s in train for o in s.objects} == set(COLOURS)
    assert {o.shape for s in train for o in s.objects} == {"circle", "square", "triangle"}


def test_sampling_is_deterministic_and_objects_never_touch():
    a = [sample_scene(np.random.default_rng(7)).caption for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(3)
    for _ in range(100):
        scene = sample_scene(rng, n_objects=3)
        assert len(scene.objects) == 3
        assert scene.masks().sum(axis=0).max() == 1


def test_sampling_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="split"):
        sample_scene(rng, split="test")
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(rng, n_objects=4)


def test_parse_caption_handles_full_and_word_dropped_captions():
    parsed = parse_caption(_two_object_scene().caption)
    assert [(o.size, o.colour, o.shape, o.position) for o in parsed.objects] == [
        ("big", "red", "circle", "left"), (None, "blue", "square", None)]
    assert parsed.background == "gray"
    dropped = parse_caption("red blue square")  # 'circle' and the joiner dropped
    assert [(o.colour, o.shape) for o in dropped.objects] == [("red", None), ("blue", "square")]


def test_unknown_word_error_names_the_word_and_lists_the_vocabulary():
    with pytest.raises(ValueError) as info:
        check_vocabulary("a red hexagon")
    message = str(info.value)
    assert "'hexagon'" in message
    assert all(word in message for word in vocabulary())


def test_checker_reads_rendered_scenes_back():
    rng = np.random.default_rng(11)
    for _ in range(150):
        scene = sample_scene(rng, split="any")
        result = check(scene.render(), scene.caption)
        assert result.all_ok, (scene.caption, result)


def test_checker_catches_wrong_images():
    scene = _two_object_scene()
    image = scene.render()
    assert check(image, scene.caption).all_ok
    wrong_colour = check(image, "a big green circle on the left and a blue square on a gray background")
    assert not wrong_colour.colour
    wrong_shape = check(image, "a big red triangle on the left and a blue square on a gray background")
    assert wrong_shape.colour and not wrong_shape.shape
    wrong_position = check(image, "a big red circle on the right and a blue square on a gray background")
    assert wrong_position.position is False
    wrong_count = check(image, "a big red circle on the left")
    assert not wrong_count.count
    wrong_background = check(image, "a big red circle on the left and a blue square on a black background")
    assert wrong_background.background_ok is False
    # the edit / insertion rule ignores size and background, and fails on any of the other four
    assert wrong_background.edit_ok and not wrong_background.all_ok
    wrong_size = check(image, "a small red circle on the left and a blue square on a gray background")
    assert wrong_size.size is False and wrong_size.edit_ok
    assert not any(r.edit_ok for r in (wrong_colour, wrong_shape, wrong_position, wrong_count))
