"""Synthetic segmentation tasks for pre-training: generic structures that no data set here holds alone.

Pre-training on the eight labelled sets teaches the network those sets' looks. A user's image is of another
kind, so the network should also have met the *shapes* microscopy is made of, under many looks. Each family
below draws seeded images of one kind of structure, with distractors that are not the class, a random
appearance (contrast of either sign, texture, uneven illumination, blur, noise, gamma, gray or a random
two-stain colour) and its binary labels:

- ``blobs``: round or elongated objects of one size range (nuclei, vesicles, spots), and unlabelled
  distractors of another size or brightness;
- ``network``: the thin boundaries of a random tessellation (membranes, cell walls), interiors textured and
  dotted with unlabelled specks;
- ``cells``: some cells of a tessellation on an empty background, each with a bright or dark halo;
- ``fibres``: smooth random curves of a width (filaments, processes, vessels);
- ``rings``: the walls of hollow objects (sheaths, envelopes), their insides a different texture;
- ``texture``: a region that differs from the rest only by texture, at the same mean intensity.

The tasks are named ``synthetic:FAMILY`` (``synthetic`` is every family) and join the real ones in
``fewcell pretrain --datasets``; they are generated at load time (seeded), never read from disk.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..core.errors import FewcellError
from .datasets import DataSet, split_name

SET = "synthetic"
SIZE = 256  #: edge of a synthetic image
IMAGES = 48  #: images per family


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    n = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / (n.std() + 1e-8)


def tessellation(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Integer cell ids of a random Voronoi tessellation whose cells are about ``cell`` px across."""
    n = max(4, int((size / cell) ** 2))
    seeds = np.ones((size, size), bool)
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    seeds[ys, xs] = False
    _, (iy, ix) = ndi.distance_transform_edt(seeds, return_indices=True)
    ids = iy * size + ix
    # jitter the borders: sample the ids through a smooth displacement
    dy, dx = (smooth_noise(rng, (size, size), 6) * cell * 0.08 for _ in range(2))
    yy, xx = np.mgrid[:size, :size]
    return ids[np.clip(yy + dy, 0, size - 1).astype(int), np.clip(xx + dx, 0, size - 1).astype(int)]


def boundaries(ids: np.ndarray, width: int) -> np.ndarray:
    edge = np.zeros(ids.shape, bool)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return ndi.binary_dilation(edge, iterations=width // 2) if width > 1 else edge


def ellipses(rng: np.random.Generator, size: int, n: int, radius: tuple[float, float], elong: float) -> np.ndarray:
    """A mask of ``n`` random ellipses with radii drawn from ``radius`` and axis ratio up to ``elong``."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        r = rng.uniform(*radius)
        a, b = r * rng.uniform(1, elong) ** 0.5, r / rng.uniform(1, elong) ** 0.5
        cy, cx, t = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0, np.pi)
        u, v = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t), -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask


def textured(rng: np.random.Generator, shape, level: float, amount: float) -> np.ndarray:
    """A field around ``level`` with a random texture of a random grain."""
    return level + amount * smooth_noise(rng, shape, rng.uniform(0.7, 4))


def blobs(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    r = rng.uniform(3, 28)
    lab = ellipses(rng, size, int(rng.uniform(0.1, 0.45) * size ** 2 / (np.pi * r * r)) + 1, (0.6 * r, 1.4 * r),
                   rng.choice([1.0, 2.0, 4.0]))
    other = ellipses(rng, size, int(rng.integers(0, 12)), (0.3 * r, 3 * r), 3.0) & ~lab
    img = textured(rng, lab.shape, 0.0, 0.15) + lab * rng.uniform(0.4, 1) * rng.choice([-1, 1])
    img += other * rng.uniform(-0.8, 0.8)
    if rng.random() < 0.4:  # a rim of another brightness
        img += (lab ^ ndi.binary_erosion(lab, iterations=2)) * rng.uniform(-0.6, 0.6)
    return img, lab


def network(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    ids = tessellation(rng, size, rng.uniform(18, 80))
    lab = boundaries(ids, int(rng.integers(1, 7)))
    inside = rng.uniform(-0.3, 0.3, ids.max() + 1)[ids]  # each cell its own level
    specks = ellipses(rng, size, int(rng.integers(0, 40)), (1.5, 6), 2.0) & ~lab
    img = textured(rng, lab.shape, 0.0, rng.uniform(0.05, 0.3)) + inside + specks * rng.uniform(-1, 1)
    return img + lab * rng.uniform(0.5, 1.2) * rng.choice([-1, 1]), lab


def cells(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    ids = tessellation(rng, size, rng.uniform(24, 90))
    keep = rng.random(ids.max() + 1) < rng.uniform(0.25, 0.7)
    lab = keep[ids] & ~boundaries(ids, int(rng.integers(1, 4)))
    lab = ndi.binary_opening(lab, iterations=2)
    halo = ndi.binary_dilation(lab, iterations=int(rng.integers(1, 4))) & ~lab
    img = textured(rng, lab.shape, 0.0, 0.08) + lab * textured(rng, lab.shape, rng.uniform(-0.6, 0.6), 0.2)
    return img + halo * rng.uniform(-1, 1), lab


def fibres(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    lab = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(2, 14))):
        p, angle = rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi)
        turn = rng.uniform(0.02, 0.25)
        for _ in range(int(size * rng.uniform(0.5, 2))):
            angle += rng.normal(0, turn)
            p = p + (np.sin(angle), np.cos(angle))
            y, x = int(p[0]), int(p[1])
            if 0 <= y < size and 0 <= x < size:
                lab[y, x] = True
    width = int(rng.integers(0, 3))  # 0: one pixel wide (binary_dilation's 0 iterations would fill the image)
    lab = ndi.binary_dilation(lab, iterations=width) if width else lab
    blobs_ = ellipses(rng, size, int(rng.integers(0, 10)), (3, 12), 2.0) & ~lab
    img = textured(rng, lab.shape, 0.0, 0.15) + blobs_ * rng.uniform(-0.8, 0.8)
    return img + lab * rng.uniform(0.5, 1.2) * rng.choice([-1, 1]), lab


def rings(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    r = rng.uniform(8, 40)
    outer = ellipses(rng, size, int(rng.uniform(0.15, 0.5) * size ** 2 / (np.pi * r * r)) + 1, (0.6 * r, 1.4 * r),
                     2.0)
    inner = ndi.binary_erosion(outer, iterations=int(max(1, r * rng.uniform(0.1, 0.4))))
    lab = outer & ~inner
    img = textured(rng, lab.shape, 0.0, 0.1) + inner * textured(rng, lab.shape, rng.uniform(-0.5, 0.5), 0.15)
    return img + lab * rng.uniform(0.5, 1.2) * rng.choice([-1, 1]), lab


def texture(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    lab = smooth_noise(rng, (size, size), rng.uniform(10, 30)) > rng.uniform(-0.6, 0.6)
    a, b = (smooth_noise(rng, (size, size), s) for s in rng.uniform(0.6, 5, 2))
    if rng.random() < 0.5:  # stripes: an orientation, not a grain, tells the regions apart
        yy, xx = np.mgrid[:size, :size]
        t, f = rng.uniform(0, np.pi), rng.uniform(0.15, 0.8)
        a = a * 0.5 + np.sin(f * (yy * np.cos(t) + xx * np.sin(t))) * 1.5
    return np.where(lab, a * rng.uniform(0.5, 1.5), b * rng.uniform(0.5, 1.5)), lab


FAMILIES: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]] = {
    "blobs": blobs, "network": network, "cells": cells, "fibres": fibres, "rings": rings, "texture": texture,
}


def appearance(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]: illumination, blur, noise, gamma and gray or two-stain colour."""
    img = img + smooth_noise(rng, img.shape, img.shape[0] / 4) * rng.uniform(0, 0.4)
    img = ndi.gaussian_filter(img, rng.uniform(0, 2))
    img = img + rng.standard_normal(img.shape) * rng.uniform(0.01, 0.25)
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) ** rng.uniform(0.6, 1.6)
    if rng.random() < 0.3:  # two stains: dark = stain A, the rest a paler stain B (a random hue each)
        a, b = rng.uniform(0.1, 0.9, 3), rng.uniform(0.6, 1.0, 3)
        rgb = (1 - img)[None] * a[:, None, None] + img[None] * b[:, None, None]
        return rgb.astype(np.float32)
    return np.repeat(img[None], 3, 0).astype(np.float32)


def family_task(name: str, seed: int, n: int | None = None, size: int | None = None) -> DataSet:
    """One family's task: ``n`` (default IMAGES) seeded images of ``size``² (default SIZE) and their labels."""
    n, size = n or IMAGES, size or SIZE
    rng = np.random.default_rng([seed, list(FAMILIES).index(name)])
    images, labels = [], []
    for _ in range(n):
        img, lab = FAMILIES[name](rng, size)
        images.append(appearance(img, rng))
        labels.append(lab.astype(np.uint8))
    return DataSet(f"{SET}:{name}", images, labels, [f"{name}{i:03d}" for i in range(n)])


def is_synthetic(name: str) -> bool:
    return split_name(name)[0] == SET


def synthetic_tasks(names: Sequence[str], exclude: Sequence[str] = (), seed: int = 0) -> list[DataSet]:
    """The tasks of the synthetic names (``synthetic`` or ``synthetic:FAMILY``), less those excluded."""
    wanted: list[str] = []
    for name in names:
        family = split_name(name)[1]
        if family and family not in FAMILIES:
            raise FewcellError(f"There is no synthetic family {family!r}; choose one of {', '.join(FAMILIES)} "
                               f"(or {SET} for all).")
        wanted += [family] if family else list(FAMILIES)
    dropped = {split_name(n)[1] or "*" for n in exclude if is_synthetic(n)}
    keep = [f for f in dict.fromkeys(wanted) if "*" not in dropped and f not in dropped]
    return [family_task(f, seed) for f in keep]
