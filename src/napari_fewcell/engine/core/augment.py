"""The one training augmentation: a k·90° rotation, a flip, and an intensity jitter.

Two strengths are used: :data:`MILD` when fine-tuning on a user's images (partial labels, stage-2
networks) and :data:`STRONG` when pre-training on many data sets (and for the pretext task).
:func:`elastic` warps a crop and its labels by a smooth random displacement (U-Net's augmentation for
few training images), as an option of the stage-2 network's training.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Jitter:
    gamma: float  #: log-gamma drawn from ±gamma
    gain: tuple[float, float]  #: contrast factor drawn from this range
    shift: float  #: brightness shift drawn from ±shift
    noise: float = 0.0  #: Gaussian noise with a standard deviation drawn from [0, noise]


MILD = Jitter(gamma=0.2, gain=(0.85, 1.15), shift=0.05)
STRONG = Jitter(gamma=0.35, gain=(0.75, 1.25), shift=0.1, noise=0.03)


def augment(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, jitter: Jitter | None = MILD):
    """Rotation by k·90°, a flip, and (unless ``jitter`` is None) the intensity jitter; (3,h,w), (h,w)."""
    k = int(rng.integers(4))
    img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
    if rng.random() < 0.5:
        img, lab = img[:, :, ::-1], lab[:, ::-1]
    if jitter is not None:
        img = np.clip(img, 0, 1) ** np.exp(rng.uniform(-jitter.gamma, jitter.gamma))
        img = img * rng.uniform(*jitter.gain) + rng.uniform(-jitter.shift, jitter.shift)
        if jitter.noise:
            img = img + rng.normal(0, rng.uniform(0, jitter.noise), img.shape)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(lab)


def elastic(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, sd: float, grid: int = 3, order: int = 3):
    """Warp (C, h, w) ``img`` and (h, w) ``lab`` by one smooth displacement: a ``grid`` × ``grid`` lattice of
    displacements drawn with standard deviation ``sd`` pixels, interpolated cubically over the crop (Ronneberger et
    al. 2015). The image is interpolated by splines of ``order`` (cubic: a linear interpolation blurs every crop a
    little, and on TEM axons stage 2 lost 1.5 Dice with it against 0.2 cubic), the labels take the nearest pixel's
    value; both are mirrored at the crop's edges."""
    h, w = lab.shape
    if sd <= 0:
        return img, lab
    coarse = rng.normal(0.0, sd, (2, grid, grid))
    field = np.stack([ndimage.zoom(c, (h / grid, w / grid), order=3, mode="nearest", grid_mode=True) for c in coarse])
    coords = np.indices((h, w), dtype=np.float32) + field  # (2, h, w): where each output pixel is read from
    warped = np.stack([ndimage.map_coordinates(c, coords, order=order, mode="mirror") for c in img]).astype(np.float32)
    out = ndimage.map_coordinates(lab, coords, order=0, mode="mirror")
    return warped, out.astype(lab.dtype)
