"""Generic filters (intensity, edges, texture at σ 1–16: skimage's ``multiscale_basic_features``) and the
random forests on them: the "forest" and "fuse" paths of prompt adaptation, tile by tile without seams. The forests
read the bank without its coarse smoothed intensity (:data:`SMOOTH_SIGMA_MAX`)."""
from __future__ import annotations

import numpy as np
import torch

from ..core.filters import KINDS, basic_features, scales
from ..core.image import as_image2d, intensity_range, normalize
from ..core.tiling import Window, windows

SIGMA_MIN, SIGMA_MAX = 1, 16  #: scales of the generic filters
FEATURE_MARGIN = 72  #: context of a tile's filters: 4σ of the largest Gaussian (+ a few px for derivatives): no seams
#: the forest and fused paths read the smoothed intensity up to this scale only (edges and Hessians at every scale):
#: at σ 8–16 it is the brightness of a pixel's wide surroundings, which a forest fitted on one box learns as a
#: threshold that other images do not share. The best on validation images of 6 leave-one-out folds of the banks
#: that lowered neither in-domain figure (σ ≤ 2 was better on validation images but cost DSB fluorescence's default
#: path 0.9); on the test split the default path's mean over 7 folds 73.95 → 76.64, 5 folds at RF + 3 instead of 2
#: (studies/study_filter_set.py; docs/benchmarks/generalisation.md, "Which filters the forests read")
SMOOTH_SIGMA_MAX = 4


def luminance_features(x: np.ndarray, sigma_max: int = SIGMA_MAX) -> np.ndarray:
    """(h, w, F) float32 filters of a normalised (3, h, w) region's luminance (intensity, edges, texture), at
    Gaussian scales SIGMA_MIN to ``sigma_max`` (core/filters.py: skimage's ``multiscale_basic_features``, faster)."""
    maps = basic_features(x.mean(0), scales(SIGMA_MIN, sigma_max), threads=torch.get_num_threads())
    return maps.transpose(1, 2, 0)


def forest_features(x: np.ndarray) -> np.ndarray:
    """(h, w, F) filters the forest and fused paths read: :func:`luminance_features` without the smoothed intensity
    above SMOOTH_SIGMA_MAX."""
    maps = [(kind, sigma) for sigma in scales(SIGMA_MIN, SIGMA_MAX) for kind in KINDS]  # luminance_features' order
    keep = [i for i, (kind, sigma) in enumerate(maps) if kind != "smooth" or sigma <= SMOOTH_SIGMA_MAX]
    return luminance_features(x)[..., keep]


def window_features(arr: np.ndarray, rng, win: Window) -> np.ndarray:
    """Forest filters (h·w, F) of one tile of an (H, W, C) image, computed on the tile with its context."""
    f = forest_features(normalize(arr[win.region], rng))[win.inner]
    return f.reshape(-1, f.shape[-1])


def generic_features(image, tile: int = 512) -> np.ndarray:
    """(H, W, F) forest filters of a whole image, tile by tile (memory bounded by the tile, not the image)."""
    arr = as_image2d(image)
    rng = intensity_range(arr)
    out = None
    for win in windows(arr.shape[:2], tile, FEATURE_MARGIN):
        f = window_features(arr, rng, win)
        if out is None:
            out = np.empty((*arr.shape[:2], f.shape[-1]), np.float32)
        out[win.tile] = f.reshape(win.ty1 - win.ty, win.tx1 - win.tx, -1)
    return out


#: the self-check's attention keys and a forest's training pixels are at most this many (4 boxes of 64²: a prompt of
#: up to 4 such boxes is never sampled): with a partial-labels run's 15 boxes, exact attention from every box pixel to
#: every other made each self-check 30–60 s on 2 cores, and the pixels of a box are so alike that a sample of them
#: teaches as much
SAMPLE_PIXELS = 16384
#: the prompt's final forest (fitted once, not once per held-out group) learns from at most this many pixels (16 boxes
#: of 64²): on the ISBI leave-one-out fold one-shot from 15 boxes rose from 79.70 to 80.49 on the test images when it
#: learnt from all 61,440 box pixels instead of SAMPLE_PIXELS of them (docs/benchmarks/partial.md)
FIT_PIXELS = 65536
SAMPLE_CLASS_MIN = 256  #: a sample keeps at least this many pixels of every class (all of a smaller class)


def pixel_sample(y: np.ndarray, cap: int = SAMPLE_PIXELS) -> np.ndarray:
    """Indices of at most about ``cap`` of the pixels ``y``, in order: every class in proportion, each with at least
    SAMPLE_CLASS_MIN (or all it has). Seeded: the same pixels give the same sample."""
    if len(y) <= cap:
        return np.arange(len(y))
    rng = np.random.default_rng(0)
    keep = []
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        n = min(len(where), max(SAMPLE_CLASS_MIN, round(len(where) * cap / len(y))))
        keep.append(rng.choice(where, n, replace=False))
    return np.sort(np.concatenate(keep))


def fit_forest(trees: int, x: np.ndarray, y: np.ndarray, cap: int = SAMPLE_PIXELS):
    """A random forest of ``trees`` fitted on (a sample of at most about ``cap`` of) the pixels ``x`` with classes
    ``y``."""
    from sklearn.ensemble import RandomForestClassifier

    i = pixel_sample(y, cap)
    forest = RandomForestClassifier(n_estimators=trees, n_jobs=max(1, torch.get_num_threads()), random_state=0)
    return forest.fit(x[i], y[i])


def forest_proba(forest, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) class probabilities of a forest that may have seen only some of the C classes."""
    out = np.zeros((len(x), n_classes), np.float32)
    out[:, forest.classes_] = forest.predict_proba(x)
    return out
