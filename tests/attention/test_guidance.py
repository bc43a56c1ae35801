import numpy as np
import pytest
import torch

from diffexplain.attention.guidance import GuidanceRecorder


class _Output:
    def __init__(self, sample):
        self.sample = sample


class _UNet(torch.nn.Module):
    """Rows of the conditional half differ from the unconditional half only in a known 2x3 patch."""

    def forward(self, sample, timestep, encoder_hidden_states=None):
        out = torch.zeros_like(sample)
        half = sample.shape[0] // 2
        out[half:, :, 1:3, 4:7] = 2.0
        out[half:, 0, 0, 0] = 4.0  # one channel only: averaged over 4 channels -> 1
        return _Output(out)


class _Pipe:
    def __init__(self):
        self.unet = _UNet()

    def __call__(self, steps=(999, 400, 1)):
        for t in steps:
            self.unet(torch.zeros(2, 4, 4, 8), torch.tensor(t))


def test_guidance_map_locates_the_difference_on_a_non_square_grid():
    pipe = _Pipe()
    with GuidanceRecorder(pipe, time_groups=2, batch_layout="cfg") as recorder:
        pipe()
    small = recorder.sums[0].sum(0).numpy()  # (4, 8): (h, w), not (w, h)
    expected = np.zeros((4, 8))
    expected[1:3, 4:7] = 2.0 * 3
    expected[0, 0] = 1.0 * 3
    np.testing.assert_allclose(small, expected)
    assert recorder.counts.tolist() == [1.0, 2.0]  # t=999 in the noisiest group; t=400 and t=1 in the other
    heat = recorder.map((16, 32))
    assert heat.shape == (16, 32)
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    assert 4 <= row < 12 and 16 <= col < 28
    assert recorder.time_view((16, 32)).shape == (2, 16, 32)


def test_guidance_hook_is_removed_after_an_exception():
    pipe = _Pipe()
    with pytest.raises(ZeroDivisionError):
        with GuidanceRecorder(pipe):
            pipe()
            raise ZeroDivisionError
    assert not pipe.unet._forward_hooks


def test_guidance_recorder_validates_its_arguments():
    with pytest.raises(ValueError, match="batch_layout"):
        GuidanceRecorder(_Pipe(), batch_layout="halves")
    with pytest.raises(ValueError, match="time_groups"):
        GuidanceRecorder(_Pipe(), time_groups=0)
    with pytest.raises(ValueError, match="pipe must be a pipeline with a unet"):
        GuidanceRecorder(object())
    with pytest.raises(RuntimeError, match="nothing recorded"):
        GuidanceRecorder(_Pipe()).map((4, 4))
