import numpy as np
import pytest
import torch

from diffexplain.attention import AttentionMaps, AttentionRecorder, threshold
from diffexplain.models.adapter import TextToImageAdapter
from tests.helpers import tiny_text2image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pipe, _, _ = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return pipe


def _generate(pipe, prompts, seeds):
    return TextToImageAdapter(pipe, num_inference_steps=3, guidance_scale=2.0).generate(prompts, seeds)


def _hook_count(pipe):
    modules = [pipe.unet, *AttentionRecorder(pipe).layers.values()]
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in modules)


def test_images_are_bit_identical_with_and_without_recording(tiny):
    plain = _generate(tiny, ["a big red circle"], [4])
    with AttentionRecorder(tiny) as recorder:
        recorded = _generate(tiny, ["a big red circle"], [4])
    assert np.array_equal(plain, recorded)
    assert recorder.accumulators and recorder.timesteps


def test_no_hook_is_left_after_a_run_or_an_exception(tiny):
    before = _hook_count(tiny)
    with AttentionRecorder(tiny):
        _generate(tiny, ["a red circle"], [0])
    assert _hook_count(tiny) == before
    with pytest.raises(RuntimeError, match="injected"):
        with AttentionRecorder(tiny):
            assert _hook_count(tiny) > before
            raise RuntimeError("injected")
    assert _hook_count(tiny) == before

    def explode(*args, **kwargs):
        raise ValueError("boom inside generation")

    handle = tiny.unet.register_forward_hook(explode)
    try:
        with pytest.raises(ValueError, match="boom"):
            with AttentionRecorder(tiny):
                _generate(tiny, ["a red circle"], [0])
    finally:
        handle.remove()
    assert _hook_count(tiny) == before


def test_batched_prompts_give_the_same_maps_as_one_by_one(tiny):
    prompts, seeds = ["a big red circle", "a blue square on the left"], [1, 2]
    with AttentionRecorder(tiny) as recorder:
        _generate(tiny, prompts, seeds)
    batched = recorder.maps(prompts, image_size=(16, 16))
    for index, (prompt, seed) in enumerate(zip(prompts, seeds)):
        with AttentionRecorder(tiny) as recorder:
            _generate(tiny, [prompt], [seed])
        alone = recorder.maps([prompt], image_size=(16, 16))
        for word in range(len(prompt.split())):
            torch.testing.assert_close(batched.word_heatmap(word, prompt_index=index), alone.word_heatmap(word),
                                       atol=1e-5, rtol=1e-4)


def test_only_the_conditional_half_is_kept_and_words_differ(tiny):
    with AttentionRecorder(tiny) as recorder:
        _generate(tiny, ["a big red circle"], [0])
    for acc in recorder.accumulators.values():
        assert acc.sums.shape[0] == 1  # CFG doubled the UNet batch; the unconditional half is dropped
    maps = recorder.maps(["a big red circle"], image_size=(16, 16))
    red, circle = maps.word_heatmap("red"), maps.word_heatmap("circle")
    assert red.shape == (16, 16) and (red >= 0).all()
    assert not torch.allclose(red, circle)
    assert maps.time_view("red").shape[0] == 5
    assert maps.layer_view("red").shape[0] == len(maps.layers)
    assert maps.head_view("red", 0).shape[0] == maps.means[maps.layers[0]].shape[2]


class _PositionQuery(torch.nn.Module):
    """Queries whose first feature of every head is the query's column / width (row-major order)."""

    def __init__(self, height, width, inner, heads):
        super().__init__()
        self.height, self.width, self.inner, self.heads = height, width, inner, heads

    def forward(self, hidden):
        batch, n, _ = hidden.shape
        out = torch.zeros(batch, n, self.inner)
        if n == self.height * self.width:
            column = torch.arange(n) % self.width
            out[:, :, :: self.inner // self.heads] = (column.float() / self.width)[None, :, None]
        return out


class _TokenKey(torch.nn.Module):
    """Keys: token 1 has a large first feature in every head, every other token zeros."""

    def __init__(self, inner, heads):
        super().__init__()
        self.inner, self.heads = inner, heads

    def forward(self, context):
        out = torch.zeros(*context.shape[:2], self.inner)
        out[:, 1, :: self.inner // self.heads] = 20.0
        return out


def test_non_square_maps_keep_their_orientation(tmp_path):
    """Latents of 8 x 16 (height x width). At full resolution token 1's attention grows with the
    column, so its heatmap must increase along the width and stay flat along the height; an
    (H, W) / (W, H) swap in the reshape would break both."""
    pipe, _, _ = tiny_text2image(tmp_path, height=16, width=32)
    unet = pipe.unet
    recorder = AttentionRecorder(unet)
    for module in recorder.layers.values():
        inner = module.to_q.out_features
        module.to_q = _PositionQuery(8, 16, inner, module.heads)
        module.to_k = _TokenKey(inner, module.heads)
    context = torch.randn(1, 32, unet.config.cross_attention_dim)
    with recorder:
        unet(torch.randn(1, 4, 8, 16), torch.tensor([500]), encoder_hidden_states=context)
    maps = AttentionMaps.from_recorder(recorder, pipe.tokenizer, ["red"], (16, 32))
    full_resolution = [n for n in maps.layers if maps.grids[n] == (8, 16)]
    assert full_resolution, maps.grids
    heatmap = maps.word_heatmap("red", layers=full_resolution)
    assert heatmap.shape == (16, 32)
    columns = heatmap.mean(dim=0)
    assert columns[-4:].mean() > 2 * columns[:4].mean()
    rows = heatmap.mean(dim=1)
    assert (rows.max() - rows.min()) < 0.05 * rows.mean()


def test_save_and_load_round_trip(tiny, tmp_path):
    with AttentionRecorder(tiny) as recorder:
        _generate(tiny, ["a big red circle"], [0])
    maps = recorder.maps(["a big red circle"], image_size=(16, 16))
    maps.save(tmp_path)
    loaded = AttentionMaps.load(tmp_path)
    torch.testing.assert_close(loaded.word_heatmap("circle"), maps.word_heatmap("circle"))
    assert loaded.timesteps == maps.timesteps


def test_bad_input_is_a_clear_error(tiny):
    from diffusers import UNet2DModel

    with AttentionRecorder(tiny) as recorder:
        _generate(tiny, ["a big red circle"], [0])
    maps = recorder.maps(["a big red circle"], image_size=(16, 16))
    with pytest.raises(ValueError, match="'square' is not in the prompt"):
        maps.word_heatmap("square")
    with pytest.raises(ValueError, match="no cross-attention"):
        AttentionRecorder(UNet2DModel(sample_size=8, block_out_channels=(8, 16), norm_num_groups=4,
                                      down_block_types=("DownBlock2D", "DownBlock2D"),
                                      up_block_types=("UpBlock2D", "UpBlock2D")))
    with pytest.raises(ValueError, match="tau must be in"):
        threshold(maps.word_heatmap("red"), 1.5)
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        AttentionRecorder(tiny).maps(["a"], image_size=(16, 16))


def test_keep_steps_keeps_every_step_and_streaming_memory_does_not_grow(tiny):
    with AttentionRecorder(tiny, keep_steps=True) as recorder:
        TextToImageAdapter(tiny, num_inference_steps=4, guidance_scale=2.0).generate(["a red circle"], [0])
    for acc in recorder.accumulators.values():
        assert len(acc.steps) == 4
        torch.testing.assert_close(torch.stack(acc.steps).sum(0), acc.sums.sum(1))
    sizes = {}
    for steps in (2, 6):
        with AttentionRecorder(tiny) as recorder:
            TextToImageAdapter(tiny, num_inference_steps=steps, guidance_scale=2.0).generate(["a red circle"], [0])
        sizes[steps] = sum(acc.sums.numel() for acc in recorder.accumulators.values())
        assert all(not acc.steps for acc in recorder.accumulators.values())
    assert sizes[2] == sizes[6]  # running sums per (layer, time group, head): flat in the step count


def test_single_token_contexts_are_normalised_over_positions(tmp_path):
    from tests.helpers import tiny_paint_by_example

    pipe = tiny_paint_by_example(tmp_path)
    unet = pipe.unet
    context = torch.randn(1, 1, unet.config.cross_attention_dim)
    sample = torch.randn(1, 9, 8, 8)
    with AttentionRecorder(unet) as auto:
        unet(sample, torch.tensor([500]), encoder_hidden_states=context)
    with AttentionRecorder(unet, normalise="keys") as keys:
        unet(sample, torch.tensor([500]), encoder_hidden_states=context)
    for name, acc in auto.accumulators.items():
        group = acc.counts.argmax()
        per_head = acc.sums[0, group]  # (heads, hw, 1)
        torch.testing.assert_close(per_head.sum(dim=1), torch.ones(per_head.shape[0], 1))  # sums over positions
        torch.testing.assert_close(keys.accumulators[name].sums[0, group], torch.ones_like(per_head))  # degenerate
    with pytest.raises(ValueError, match="normalise must be one of"):
        AttentionRecorder(unet, normalise="rows")


def test_layers_at_least_keeps_only_fine_grids_and_changes_the_map(tiny):
    with AttentionRecorder(tiny) as recorder:
        _generate(tiny, ["a big red circle"], [3])
    maps = recorder.maps(["a big red circle"], image_size=(16, 16))
    sides = sorted({min(g) for g in maps.grids.values()})
    assert len(sides) > 1, maps.grids
    fine = maps.layers_at_least(sides[-1])
    assert fine and all(min(maps.grids[n]) == sides[-1] for n in fine)
    assert set(fine) < set(maps.layers)
    assert maps.layers_at_least(1) == list(maps.layers)
    assert not torch.allclose(maps.word_heatmap("red", layers=fine), maps.word_heatmap("red"))
    with pytest.raises(ValueError, match="min_side"):
        maps.layers_at_least(0)
    with pytest.raises(ValueError, match="leaves no layer"):
        maps.layers_at_least(sides[-1] + 1)


def test_a_prompt_longer_than_the_context_is_refused_naming_the_words_cut(tiny):
    """The pipeline truncates silently; the words it cut would get all-zero maps."""
    words = ["red", "circle", "blue", "square"] * 8  # 32 word tokens; the tiny encoder takes 30
    prompt = " ".join(words)
    with AttentionRecorder(tiny) as recorder:
        tiny(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    with pytest.raises(ValueError, match=r"cuts off 'blue', 'square' .*no attention maps"):
        recorder.maps([prompt], image_size=(16, 16))
    fits = " ".join(words[:30])
    with AttentionRecorder(tiny) as recorder:
        tiny(fits, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    maps = recorder.maps([fits], image_size=(16, 16))
    assert float(maps.word_heatmap(29).sum()) > 0  # the last word that fits has a map


def test_instruct_pix2pix_rows_are_found_by_default(tmp_path):
    """Its guidance batch is [text+image, image, none]: 'auto' must read the first third, not the second half."""
    from PIL import Image

    from tests.helpers import tiny_image_pipeline

    pipe = tiny_image_pipeline(tmp_path, "pix2pix")
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    prompts = ["make the circle red", "make the square blue"]  # 2 prompts: a UNet batch of 6, even

    def record(layout):
        with AttentionRecorder(pipe, batch_layout=layout) as recorder:
            pipe(prompts, image=[source] * 2, num_inference_steps=2, guidance_scale=3.0, image_guidance_scale=1.5,
                 generator=[torch.Generator().manual_seed(s) for s in (0, 1)], output_type="np")
        return recorder.maps(prompts, image_size=(16, 16))

    auto, pix2pix = record("auto"), record("pix2pix")
    for index in range(4):
        assert torch.equal(auto.word_heatmap(index, prompt_index=1), pix2pix.word_heatmap(index, prompt_index=1))
    with pytest.raises(ValueError, match=r"one entry per recorded batch row \(3\)"):
        record("cfg")  # the old default: the second half of 6 rows mixes image-only and unconditional rows
