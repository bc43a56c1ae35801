import numpy as np
import pytest

from diffexplain.world.edits import EDIT_KINDS, sample_edit


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
