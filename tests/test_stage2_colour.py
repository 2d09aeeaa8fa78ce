"""Stage 2's colour jitter: a colour image's channels move apart (a stain's variation); a gray one stays gray."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine import FewcellError, TrainParams
from napari_fewcell.engine.partial.stage2 import sample_batch


def crops(image: np.ndarray, colour: float) -> np.ndarray:
    index = [np.zeros(image.shape[1:], np.int64)]
    x, _ = sample_batch([image], index, np.ones(1), 32, 16, np.random.default_rng(0), colour=colour)
    return x.numpy()


def test_colour_jitter_moves_a_colour_images_channels_apart_and_leaves_gray_gray():
    """The jitter of every channel is one increasing map, so it keeps a flat colour's channels in their order; the
    colour jitter moves each channel on its own, and some crops' order changes."""
    gray = np.repeat(np.random.default_rng(1).random((1, 48, 48), np.float32), 3, axis=0)
    assert all(np.array_equal(c[0], c[1]) and np.array_equal(c[0], c[2]) for c in crops(gray, 0.2))
    flat = np.ones((3, 48, 48), np.float32) * np.array([0.5, 0.45, 0.4], np.float32)[:, None, None]
    for colour, reordered in ((0.0, False), (0.2, True)):
        means = crops(flat, colour).mean((2, 3))
        assert (~((means[:, 0] > means[:, 1]) & (means[:, 1] > means[:, 2]))).any() == reordered


@pytest.mark.parametrize("value", [-0.1, 0.6])
def test_a_colour_jitter_out_of_range_gets_one_sentence(value):
    with pytest.raises(FewcellError, match="colour jitter"):
        TrainParams(colour_jitter=value).check()
