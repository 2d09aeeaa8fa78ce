"""Class labels → instance labels (one id per object), plane by plane."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .errors import FewcellError

METHODS = ("components", "watershed")


def _plane_instances(lab: np.ndarray, method: str, split_depth: float) -> tuple[np.ndarray, int]:
    out = np.zeros(lab.shape, np.int64)
    n = 0
    for v in np.unique(lab):
        if v == 0:
            continue
        mask = lab == v
        comps, k = ndi.label(mask)
        if method == "watershed" and k:
            from skimage.morphology import h_maxima
            from skimage.segmentation import watershed

            dist = ndi.distance_transform_edt(mask)
            # one marker per distance maximum at least ``split_depth`` px deeper than the saddle to
            # its neighbour: touching round objects split, a flat ridge stays one object
            markers, m = ndi.label(h_maxima(dist, split_depth))
            missing = np.setdiff1d(np.arange(1, k + 1), np.unique(comps[markers > 0]))
            for j, c in enumerate(missing, start=m + 1):  # tiny objects too shallow for a maximum
                markers[tuple(np.argwhere(comps == c)[0])] = j
            comps = watershed(-dist, markers, mask=mask)
            k = int(comps.max())
        out[mask] = comps[mask] + n
        n += k
    return out, n


def instance_labels(labels, method: str = "components", split_depth: float = 1.0) -> np.ndarray:
    """Number the objects of every non-zero class: connected components, or a distance-transform
    watershed that also splits touching round objects. 2D or a stack of planes (numbered across)."""
    if method not in METHODS:
        raise FewcellError(f"Unknown instance method '{method}': choose one of {', '.join(METHODS)}.")
    lab = np.asarray(labels)
    planes = lab[None] if lab.ndim == 2 else lab.reshape(-1, *lab.shape[-2:])
    out = np.zeros(planes.shape, np.int64)
    n = 0
    for z, plane in enumerate(planes):
        inst, k = _plane_instances(plane, method, split_depth)
        out[z] = np.where(inst > 0, inst + n, 0)
        n += k
    dtype = np.uint16 if n < 2**16 else np.uint32
    return out.reshape(lab.shape).astype(dtype)
