"""The filter bank (engine/core/filters.py) is skimage's ``multiscale_basic_features``, bit for bit: the prompt's
forests (prompt/filters.py), the perceptron's extras (fewshot/features.py) and the coverage score read it."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import multiscale_basic_features

from napari_fewcell.engine.core.filters import basic_features, scales
from napari_fewcell.engine.fewshot.features import EXTRAS, extras
from napari_fewcell.engine.prompt.filters import luminance_features


def skimage_maps(lum, sigma_max):
    return multiscale_basic_features(lum, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=sigma_max)


@pytest.mark.parametrize("shape", [(37, 53), (128, 96)])
@pytest.mark.parametrize("sigma_max", [8, 16])
def test_the_bank_is_skimages_bit_for_bit(shape, sigma_max):
    x = np.random.default_rng(sum(shape)).random((3, *shape)).astype(np.float32)
    want = skimage_maps(x.mean(0), sigma_max)
    for threads in (1, 2):
        got = basic_features(x.mean(0), scales(1, sigma_max), threads=threads)
        np.testing.assert_array_equal(got.transpose(1, 2, 0), want)
    np.testing.assert_array_equal(luminance_features(x, sigma_max), want)
    if sigma_max == 16:
        ex = extras(x)
        assert ex.shape == (len(EXTRAS), *shape) and ex.dtype == np.float32
        np.testing.assert_array_equal(ex, np.concatenate([x, want.transpose(2, 0, 1)]))


def test_a_batch_of_regions_gets_each_regions_extras():
    from napari_fewcell.engine.fewshot.features import extras_batch

    x = np.random.default_rng(5).random((5, 3, 40, 44)).astype(np.float32)
    batch = extras_batch(x)
    for xi, got in zip(x, batch):
        np.testing.assert_array_equal(got, extras(xi))
