import numpy as np
import pytest

from diffexplain.metrics import ioa, iou, mass_ratio, mean_iou, pointing_game


def _masks():
    a = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 pixels
    b = np.zeros((4, 4), bool)
    b[1:3, 1:3] = True  # 4 pixels, overlap 1
    return a, b


def test_iou_and_ioa_by_hand():
    a, b = _masks()
    assert iou(a, b) == pytest.approx(1 / 7)
    assert ioa(a, b) == pytest.approx(1 / 4)
    assert iou(a, a) == 1.0
    assert iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    assert mean_iou([(a, b), (a, a)]) == pytest.approx((1 / 7 + 1) / 2)


def test_pointing_game_and_mass_ratio_by_hand():
    a, _ = _masks()
    heatmap = np.zeros((4, 4))
    heatmap[0, 1] = 3.0
    heatmap[3, 3] = 1.0
    assert pointing_game(heatmap, a)
    assert not pointing_game(heatmap, ~a)
    # 3/4 of the mass inside a mask covering 1/4 of the image: ratio 3
    assert mass_ratio(heatmap, a) == pytest.approx(3.0)
    assert mass_ratio(np.ones((4, 4)), a) == pytest.approx(1.0)


def test_bad_shapes_and_non_binary_masks_are_errors():
    a, _ = _masks()
    with pytest.raises(ValueError, match="same shape"):
        iou(a, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="binary"):
        iou(a, np.full((4, 4), 0.5))


def test_imacs_by_hand():
    from diffexplain.metrics import imacs

    attribution = np.array([[4.0, 2.0], [0.0, 0.0]])  # normalised: [[1, 0.5], [0, 0]]
    mask = np.array([[1, 0], [0, 0]])
    # S_in = 1, S_out = (0.5 + 0 + 0) / 3 = 1/6, IMACS = 1 - 3/6 = 0.5
    assert imacs(attribution, mask) == pytest.approx(0.5)
    assert imacs(attribution, mask, lam=0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="inside and outside"):
        imacs(attribution, np.ones((2, 2)))
