"""Class labels → instance labels (one id per object), plane by plane."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .errors import FewcellError

METHODS = ("components", "watershed", "confidence")
#: σ (pixels) of the Gaussian smoothing of the watershed's elevation (the distance to the background, times the
#: confidence for "confidence") before its h-maxima: a ragged rim no longer makes one nucleus two. Chosen on the
#: DSB 2018 train images (σ 1–2, h 0.5–2); it lifted F1@0.5 on the test images by 10 (fluorescence) and 14 (H&E)
#: points over the unsmoothed distance (benchmarks/bench_instances.py, docs/benchmarks/)
SMOOTH_SIGMA = 1.0


def _one_marker_each(markers: np.ndarray, m: int, comps: np.ndarray, k: int) -> np.ndarray:
    """Give every component of ``comps`` (1..k) that holds no marker one at its first pixel, numbered m+1, m+2, …
    (tiny objects too shallow for a maximum are kept, never lost)."""
    ids, first = np.unique(comps.ravel(), return_index=True)  # every id 1..k, and 0 unless the mask is full
    has = np.zeros(k + 1, bool)
    has[comps[markers > 0]] = True
    missing = np.flatnonzero(~has[1:]) + 1
    np.put(markers, first[np.searchsorted(ids, missing)], np.arange(m + 1, m + 1 + len(missing)))
    return markers


def _split(mask: np.ndarray, comps: np.ndarray, k: int, method: str, split_depth: float, conf) -> np.ndarray:
    """Watershed of one class mask from one marker per maximum of its elevation at least ``split_depth`` above the
    saddle to its neighbour: the distance to the background ("watershed"), or that distance times the confidence
    ("confidence": unsure pixels, at the rim or between two nuclei, sink), smoothed by :data:`SMOOTH_SIGMA`."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    elev = ndi.distance_transform_edt(mask)
    elev = ndi.gaussian_filter(elev * conf if method == "confidence" else elev, SMOOTH_SIGMA) * mask
    markers, m = ndi.label(h_maxima(elev, split_depth))
    return watershed(-elev, _one_marker_each(markers, m, comps, k), mask=mask)


def _plane_instances(lab: np.ndarray, method: str, split_depth: float, conf) -> tuple[np.ndarray, int]:
    out = np.zeros(lab.shape, np.int64)
    n = 0
    for v in np.unique(lab):
        if v == 0:
            continue
        mask = lab == v
        comps, k = ndi.label(mask)
        if method != "components" and k:
            comps = _split(mask, comps, k, method, split_depth, conf)
            k = int(comps.max())
        out[mask] = comps[mask] + n
        n += k
    return out, n


def instance_labels(labels, method: str = "components", split_depth: float = 1.0, confidence=None) -> np.ndarray:
    """Number the objects of every non-zero class: connected components; a distance-transform watershed that
    also splits touching round objects; or that watershed seeded from the segmentation's ``confidence`` (the
    winning class's probability per pixel, the shape of ``labels``). 2D or a stack of planes (numbered across)."""
    if method not in METHODS:
        raise FewcellError(f"Unknown instance method '{method}': choose one of {', '.join(METHODS)}.")
    lab = np.asarray(labels)
    if method == "confidence" and confidence is None:
        raise FewcellError("The 'confidence' instance method needs the segmentation's confidence map "
                           "(Segmenter.segment_iter(image, prompt, confidence=True)).")
    if confidence is not None and np.shape(confidence) != lab.shape:
        raise FewcellError(f"The confidence map's shape {np.shape(confidence)} is not the labels' {lab.shape}.")
    if confidence is not None and not np.isfinite(np.asarray(confidence, np.float64)).all():
        raise FewcellError("The confidence map holds NaN or infinite values; give the probabilities the segmentation "
                           "returned (from 0 to 1).")
    if isinstance(split_depth, bool) or not isinstance(split_depth, (int, float, np.number)) \
            or not (math.isfinite(split_depth) and split_depth >= 0):
        raise FewcellError(f"The watershed's split depth must be a number of 0 or more, not {split_depth!r}.")
    planes = lab[None] if lab.ndim == 2 else lab.reshape(-1, *lab.shape[-2:])
    confs = [None] * len(planes) if confidence is None else np.asarray(confidence).reshape(planes.shape)
    out = np.zeros(planes.shape, np.int64)
    n = 0
    for z, plane in enumerate(planes):
        conf = None if confs[z] is None else confs[z].astype(np.float64)
        inst, k = _plane_instances(plane, method, split_depth, conf)
        out[z] = np.where(inst > 0, inst + n, 0)
        n += k
    dtype = np.uint16 if n < 2**16 else np.uint32
    return out.reshape(lab.shape).astype(dtype)
