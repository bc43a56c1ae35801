import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from diffexplain_shapes import Scene, ShapeObject
from diffexplain_shapes import pipelines as shapes
from training.grounding import AttentionTaps, token_objects


def _scene():
    return Scene(
        objects=(
            ShapeObject("red", "circle", "big", "left", 15.0, 32.0, name_size=True, name_position=True),
            ShapeObject("blue", "square", "small", "right", 49.0, 32.0, name_size=False, name_position=False),
        ),
        prefix=("a", "picture", "of"), joiners=("and",),
    )


def test_token_objects_marks_only_object_words_at_their_token_positions(shapes_pipe):
    scene = _scene()
    # a picture of a big red circle on the left and a blue square  (BOS at position 0)
    out = token_objects(scene, shapes_pipe.tokenizer, 32)
    expected = np.full(32, -1)
    expected[[5, 6, 7]] = 0  # big red circle
    expected[[13, 14]] = 1  # blue square; "left" (position role) is not grounded
    assert out.tolist() == expected.tolist()


def _unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(**shapes.unet_config()).eval()


def test_uniform_attention_gives_one_minus_area_squared():
    """With zero query weights every token's attention is uniform over positions, so the inside
    share is the mask's area fraction and the loss is (1 - area)^2 exactly."""
    unet = _unet()
    for module in AttentionTaps(unet).modules.values():
        torch.nn.init.zeros_(module.to_q.weight)
    masks = torch.zeros(1, 3, 16, 16)
    masks[0, 0, :8, :] = 1.0  # top half: area 0.5 at every grid size
    token_object = torch.full((1, 32), -1, dtype=torch.long)
    token_object[0, 3] = 0
    with torch.no_grad(), AttentionTaps(unet) as taps:
        unet(torch.randn(1, 8, 16, 16), torch.tensor([500]), torch.randn(1, 32, 128))
        assert set(taps.inputs) and all(h.shape[1] >= 64 for _, h, _ in taps.inputs.values())
        assert taps.loss(masks, token_object).item() == pytest.approx(0.25, abs=1e-5)
        full = torch.ones(1, 3, 16, 16)
        assert taps.loss(full, token_object).item() == pytest.approx(0.0, abs=1e-6)
        assert taps.loss(masks, torch.full((1, 32), -1)).item() == 0.0  # nothing grounded
    assert all(not m._forward_pre_hooks for m in AttentionTaps(unet).modules.values())


def test_grounding_loss_trains_a_token_onto_its_object():
    unet = _unet()
    context = torch.randn(2, 32, 128)
    latents = torch.randn(2, 8, 16, 16)
    masks = torch.zeros(2, 3, 16, 16)
    masks[0, 0, :6, :6] = 1.0
    masks[1, 0, 10:, 10:] = 1.0
    token_object = torch.full((2, 32), -1, dtype=torch.long)
    token_object[:, 2] = 0
    params = [p for m in AttentionTaps(unet).modules.values() for p in (*m.to_q.parameters(), *m.to_k.parameters())]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    taps = AttentionTaps(unet)
    losses = []
    for _ in range(30):
        with taps:
            unet(latents, torch.tensor([500, 500]), context)
        loss = taps.loss(masks, token_object)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.7 and losses[-1] < 0.5 * losses[0]
