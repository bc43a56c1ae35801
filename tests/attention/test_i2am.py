import numpy as np
import pytest
import torch

from diffexplain.attention import AttentionRecorder
from diffexplain.image2image.i2am import (
    _reference_pixels,
    encoder_g2r,
    g2r,
    i2am_paint_by_example,
    record_reference_attention,
)
from diffexplain.metrics import imacs
from diffexplain.models.edit_adapter import PaintByExampleAdapter
from tests.helpers import tiny_paint_by_example, tiny_text2image


def test_paint_by_example_r2g_views_and_imacs(tmp_path):
    pipe = tiny_paint_by_example(tmp_path, height=16, width=32)
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 32), bool)
    mask[4:12, 18:30] = True
    adapter = PaintByExampleAdapter(pipe, image=rng.integers(0, 256, (16, 32, 3), dtype=np.uint8), mask=mask,
                                    reference=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), num_inference_steps=5)
    reference_mask = np.zeros((8, 8), bool)
    reference_mask[2:6, 1:4] = True
    result = i2am_paint_by_example(adapter, seed=1, reference_mask=reference_mask)
    assert result.r2g.shape == (16, 32) and (result.r2g >= 0).all()
    # one reference token: G2R is read off the image encoder, on the reference's pixels
    assert result.g2r.shape == (8, 8) and (result.g2r >= 0).all() and result.g2r.max() > 0
    assert result.imacs_g2r == pytest.approx(imacs(result.g2r, reference_mask, 3.0))
    assert i2am_paint_by_example(adapter, seed=1).imacs_g2r is None  # no reference mask, no score
    with pytest.raises(ValueError, match="reference_mask must have the reference's size"):
        i2am_paint_by_example(adapter, seed=1, reference_mask=np.ones((16, 32), bool))
    assert np.isfinite(result.imacs_r2g)
    assert result.maps.time_view("reference").shape[0] == 5
    assert result.maps.layer_view("reference").shape[0] == len(result.maps.layers)
    assert np.array_equal(result.image, adapter.generate([1])[0])  # recording leaves the image unchanged


class _ConstantQuery(torch.nn.Module):
    def __init__(self, inner, heads):
        super().__init__()
        self.inner, self.heads = inner, heads

    def forward(self, hidden):
        out = torch.zeros(*hidden.shape[:2], self.inner)
        out[..., :: self.inner // self.heads] = 1.0
        return out


class _ColumnKey(torch.nn.Module):
    """Token 0 is a class token (key 0); tokens 1..16 form a 4x4 grid, key grows with the column."""

    def __init__(self, inner, heads):
        super().__init__()
        self.inner, self.heads = inner, heads

    def forward(self, context):
        out = torch.zeros(*context.shape[:2], self.inner)
        column = (torch.arange(16) % 4).float()
        out[:, 1:, :: self.inner // self.heads] = (2.0 * column)[None, :, None]
        return out


def test_g2r_lays_reference_tokens_on_their_grid(tmp_path):
    pipe, _, _ = tiny_text2image(tmp_path)
    unet = pipe.unet
    for module in AttentionRecorder(unet).layers.values():
        inner = module.to_q.out_features
        module.to_q = _ConstantQuery(inner, module.heads)
        module.to_k = _ColumnKey(inner, module.heads)
    context = torch.randn(1, 17, unet.config.cross_attention_dim)
    _, maps = record_reference_attention(
        unet, lambda: unet(torch.randn(1, 4, 8, 8), torch.tensor([500]), encoder_hidden_states=context),
        n_reference_tokens=17, image_size=(16, 16), batch_layout="none")
    reverse = g2r(maps, reference_size=(32, 32))
    assert reverse.shape == (32, 32)
    columns, rows = reverse.mean(axis=0), reverse.mean(axis=1)
    assert columns[-6:].mean() > 3 * columns[:6].mean()  # the right of the reference draws the most attention
    assert rows.max() - rows.min() < 0.1 * rows.mean()
    region = np.zeros((16, 16), bool)
    region[:4, :4] = True
    assert g2r(maps, region=region, reference_size=(32, 32)).shape == (32, 32)  # a specific-reference map
    with pytest.raises(ValueError, match="selects no generated position"):
        g2r(maps, region=np.zeros((16, 16), bool), reference_size=(32, 32))


def test_i2am_adds_a_guidance_map_scored_by_imacs(tmp_path):
    pipe = tiny_paint_by_example(tmp_path, height=16, width=32)
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 32), bool)
    mask[4:12, 18:30] = True
    source, reference = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8), rng.integers(0, 256, (8, 8, 3), np.uint8)
    adapter = PaintByExampleAdapter(pipe, image=source, mask=mask, reference=reference, num_inference_steps=3)
    result = i2am_paint_by_example(adapter, seed=1)
    assert result.guidance.shape == (16, 32) and (result.guidance >= 0).all() and result.guidance.max() > 0
    assert np.isfinite(result.imacs_guidance)
    # the time view: one map per group, summing to the whole map; each scored by IMACS
    assert result.guidance_time.shape == (5, 16, 32)
    np.testing.assert_allclose(result.guidance_time.sum(0), result.guidance, rtol=1e-5, atol=1e-6)
    from diffexplain.metrics import imacs

    assert result.imacs_guidance_time == tuple(imacs(m, mask, 3.0) for m in result.guidance_time)
    unguided = PaintByExampleAdapter(pipe, image=source, mask=mask, reference=reference, num_inference_steps=3,
                                     guidance_scale=1.0)
    plain = i2am_paint_by_example(unguided, seed=1)
    assert plain.guidance is None and plain.imacs_guidance is None and plain.guidance_time is None


def test_single_token_attention_logits_get_no_gradient(tmp_path):
    """Why R2G says little on a one-token reference: the key-softmax over one token is 1, so the
    query/key weights of the cross-attention receive no gradient (zero up to rounding in the attention
    kernel's backward pass); with two tokens they do."""
    pipe = tiny_paint_by_example(tmp_path)
    unet = pipe.unet
    attn = next(m for n, m in unet.named_modules() if n.endswith("attn2"))
    latents = torch.randn(1, unet.config.in_channels, 8, 8)
    for tokens, zero in ((1, True), (2, False)):
        unet.zero_grad()
        context = torch.randn(1, tokens, unet.config.cross_attention_dim)
        unet(latents, 10, context).sample.square().sum().backward()
        scale = attn.to_v.weight.grad.abs().max()
        assert scale > 0
        for weight in (attn.to_k.weight, attn.to_q.weight):
            relative = float(weight.grad.abs().max() / scale)
            assert relative < 1e-4 if zero else relative > 1e-3


def test_encoder_g2r_is_the_rollout_of_the_encoders_own_attention(tmp_path):
    pipe = tiny_paint_by_example(tmp_path)
    encoder = pipe.image_encoder
    pixels = _reference_pixels(pipe, np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    # reference implementation: transformers' own attention probabilities (eager kernel), rolled out here
    encoder.model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = encoder.model(pixel_values=pixels, output_attentions=True).attentions
    assert len(attentions) == 2 and attentions[0].shape == (1, 2, 17, 17)  # class token + 4x4 patches
    rollout = torch.eye(17)
    for layer in attentions:
        mixed = 0.5 * layer[0].mean(0) + 0.5 * torch.eye(17)
        rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
    expected = rollout[0, 1:].reshape(4, 4).numpy()
    encoder.model.set_attn_implementation("sdpa")  # the hooks do not depend on the kernel
    np.testing.assert_allclose(encoder_g2r(encoder, pixels, (4, 4)), expected, rtol=1e-4, atol=1e-6)
    assert encoder_g2r(encoder, pixels, (8, 12)).shape == (8, 12)  # upsampled to any reference size


def test_encoder_g2r_removes_its_hooks_after_an_exception(tmp_path):
    encoder = tiny_paint_by_example(tmp_path).image_encoder
    with pytest.raises(RuntimeError):
        encoder_g2r(encoder, torch.zeros(1, 5, 32, 32), (8, 8))  # 5 channels: the patch embedding fails
    assert all(not m._forward_pre_hooks for m in encoder.modules())
    with pytest.raises(ValueError, match=r"pixel_values must be one image, \(1, 3, h, w\), got \(2, 3, 32, 32\)"):
        encoder_g2r(encoder, torch.zeros(2, 3, 32, 32), (8, 8))
    with pytest.raises(ValueError, match="no self-attention layer"):
        encoder_g2r(torch.nn.Linear(2, 2), torch.zeros(1, 3, 32, 32), (8, 8))


def test_encoder_g2r_follows_the_object_on_the_shipped_model():
    from diffexplain_shapes import Scene, ShapeObject
    from diffexplain_shapes import pipelines as shapes

    pipe = shapes.load("paint_by_example")
    for x, y in ((16.0, 16.0), (48.0, 16.0), (16.0, 48.0)):  # off-centre: rows follow y, columns x
        square = ShapeObject("red", "square", "small", "left", x, y)
        reference = Scene(objects=(square,)).render(64, 64)
        reverse = encoder_g2r(pipe.image_encoder, _reference_pixels(pipe, reference), (64, 64))
        row, column = np.unravel_index(reverse.argmax(), reverse.shape)
        assert abs(column - x) <= 6 and abs(row - y) <= 6
        inside = square.mask(64, 64)
        assert reverse[inside].mean() > 5 * reverse[~inside].mean()

