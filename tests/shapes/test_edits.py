import numpy as np
import pytest

from diffexplain_shapes import Scene, ShapeObject
from diffexplain_shapes.edits import EDIT_KINDS, inpainted_relevance, sample_edit


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_every_edit_kind_changes_exactly_what_it_says(kind):
    rng = np.random.default_rng(0)
    for _ in range(20):
        edit = sample_edit(rng, kind=kind)
        source, target = edit.source.render(), edit.target.render()
        changed = edit.changed_mask()
        differs = (source != target).any(axis=-1)
        assert differs.any()
        assert not (differs & ~changed).any()  # nothing outside the changed region moves
        assert len(edit.words) == len(edit.instruction.split())
        assert edit.relevance.sum() >= 2 and (edit.relevance == 0).sum() >= 1


def test_a_hand_checked_recolour():
    rng = np.random.default_rng(3)
    edit = sample_edit(rng, kind="recolour")
    words = [(w.text, w.role) for w in edit.words]
    new_colour = words[-1][0]
    obj = edit.source.objects[edit.object_index]
    assert ("the", "filler") in words and (obj.colour, "colour") in words and (obj.shape, "shape") in words
    assert edit.target.objects[edit.object_index].colour == new_colour != obj.colour


def test_split_and_bad_kind():
    rng = np.random.default_rng(1)
    assert all(not (e.source.held_out or e.target.held_out) for e in (sample_edit(rng) for _ in range(50)))
    assert all(e.source.held_out or e.target.held_out for e in (sample_edit(rng, split="heldout") for _ in range(20)))
    with pytest.raises(ValueError, match="kind must be one of"):
        sample_edit(rng, kind="rotate")


def test_inpainted_relevance_on_a_hand_checked_scene():
    scene = Scene(
        objects=(
            ShapeObject("red", "circle", "big", "left", 15.0, 32.0, name_size=True, name_position=True),
            ShapeObject("blue", "square", "small", "right", 49.0, 32.0, name_size=False, name_position=False),
        ),
        background="gray", prefix=(), joiners=("and",), name_background=True,
    )
    words = scene.caption.split()
    # "a big red circle on the left and a blue square on a gray background"
    relevant_0 = [w for w, r in zip(words, inpainted_relevance(scene, 0)) if r]
    relevant_1 = [w for w, r in zip(words, inpainted_relevance(scene, 1)) if r]
    assert relevant_0 == ["big", "red", "circle"]  # its position word is fixed by the mask: not relevant
    assert relevant_1 == ["blue", "square"]
    assert inpainted_relevance(scene, 0).dtype == np.int64 and len(inpainted_relevance(scene, 0)) == len(words)
