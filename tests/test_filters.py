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


def test_the_forests_read_the_bank_without_its_coarse_smoothing():
    from napari_fewcell.engine.prompt.filters import SMOOTH_SIGMA_MAX, forest_features

    x = np.random.default_rng(7).random((3, 48, 40)).astype(np.float32)
    full = skimage_maps(x.mean(0), 16)  # per scale σ 1, 2, 4, 8, 16: smoothed, edges, Hessian ×2
    kept = [i for i in range(20) if i % 4 or 2 ** (i // 4) <= SMOOTH_SIGMA_MAX]
    assert SMOOTH_SIGMA_MAX == 4 and len(kept) == 18
    np.testing.assert_array_equal(forest_features(x), full[..., kept])
    # an offset of the whole image's brightness reaches only the fine smoothed maps (the first of σ 1, 2 and 4)
    shifted = forest_features(x + 0.25) - forest_features(x)
    fine = np.isin(np.arange(18), [0, 4, 8])
    assert np.abs(shifted[..., ~fine]).max() < 1e-4 and np.abs(shifted[..., fine] - 0.25).max() < 1e-4
