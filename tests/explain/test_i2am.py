import numpy as np
import pytest
import torch

from diffexplain.attention import AttentionRecorder
from diffexplain.explain.i2am import g2r, i2am_paint_by_example, record_reference_attention
from diffexplain.models.edit_adapter import PaintByExampleAdapter
from tests.helpers import tiny_paint_by_example, tiny_text2image


def test_paint_by_example_r2g_views_and_imacs(tmp_path):
    pipe = tiny_paint_by_example(tmp_path, height=16, width=32)
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 32), bool)
    mask[4:12, 18:30] = True
    adapter = PaintByExampleAdapter(pipe, image=rng.integers(0, 256, (16, 32, 3), dtype=np.uint8), mask=mask,
                                    reference=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), num_inference_steps=5)
    result = i2am_paint_by_example(adapter, seed=1)
    assert result.r2g.shape == (16, 32) and (result.r2g >= 0).all()
    assert result.g2r is None and result.imacs_g2r is None  # one reference token: no map over the reference
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
