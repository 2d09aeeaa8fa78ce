"""The ``coverage`` score of workflow 4: tiles that together cover what the images hold, before any model exists.

A cold start has no model worth asking (issue 21, item 3): the tiles a user annotates first should
show the kinds of texture the images hold, each kind once. Every tile gets a descriptor — the mean
and the standard deviation over the tile of generic filters (skimage's ``multiscale_basic_features``
of the luminance, σ 1–8, at the scoring resolution), each feature standardised over the tiles —
and k-means (k = ``top``) groups the tiles; the suggestions are the tile nearest each group's
centre, the largest group first, and a tile's score is the share of the tiles its group holds.
Tiles already annotated (``exclude``) cover their own group: a group holding one of them is
passed over while others are left (its tile then scores 0).
"""
from __future__ import annotations

import numpy as np

from ..core.image import normalize

SIGMA_MAX = 8  #: largest Gaussian of the descriptor's filters (at the scoring resolution)


def descriptor(tile: np.ndarray) -> np.ndarray:
    """(2F,) mean and standard deviation over a normalised (3, h, w) tile of its luminance filters."""
    from skimage.feature import multiscale_basic_features

    f = multiscale_basic_features(tile.mean(0), intensity=True, edges=True, texture=True, sigma_min=1,
                                  sigma_max=SIGMA_MAX)
    f = f.reshape(-1, f.shape[-1])
    return np.concatenate([f.mean(0), f.std(0)]).astype(np.float32)


def descriptors(arrs, boxes, ranges, scale: int) -> np.ndarray:
    """(N, 2F) descriptors of the (image index, (y, x, h, w)) boxes, each tile area-averaged by ``scale``."""
    out = []
    for i, (y, x, h, w) in boxes:
        t = normalize(arrs[i][y : y + h, x : x + w], ranges[i])
        if scale > 1:
            hh, ww = t.shape[1] // scale * scale, t.shape[2] // scale * scale
            t = t[:, :hh, :ww].reshape(3, hh // scale, scale, ww // scale, scale).mean((2, 4))
        out.append(descriptor(t))
    return np.stack(out)


def pick(desc: np.ndarray, top: int, covered: np.ndarray | None = None, seed: int = 0) -> tuple[list[int], list[float]]:
    """Indices of ``top`` tiles (rows of ``desc``) covering the descriptor space, best first, and their scores (the
    share of the tiles their group holds). ``covered``: descriptors of annotated tiles, whose groups come last."""
    from sklearn.cluster import KMeans

    allx = desc if covered is None or not len(covered) else np.vstack([desc, covered])
    mu, sd = allx.mean(0), allx.std(0) + 1e-6
    z = (desc - mu) / sd
    k = min(len(desc), top + (0 if covered is None else len(covered)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z)
    sizes = np.bincount(km.labels_, minlength=k)
    taken = set() if covered is None or not len(covered) else set(km.predict((covered - mu) / sd).tolist())
    order = sorted(range(k), key=lambda c: (c in taken, -sizes[c]))
    picked, scores = [], []
    for c in order:
        members = np.flatnonzero(km.labels_ == c)
        if not len(members):
            continue
        d = ((z[members] - km.cluster_centers_[c]) ** 2).sum(1)
        picked.append(int(members[np.argmin(d)]))
        scores.append(0.0 if c in taken else float(sizes[c] / len(desc)))  # a covered kind adds nothing new
        if len(picked) == top:
            break
    return picked, scores
