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

import warnings

import numpy as np

from ..prompt.filters import luminance_features

SIGMA_MAX = 8  #: largest Gaussian of the descriptor's filters (at the scoring resolution)


def descriptors(tiles) -> np.ndarray:
    """(N, 2F) mean and standard deviation over each normalised (3, h, w) tile of its luminance filters."""
    out = []
    for tile in tiles:
        f = luminance_features(np.asarray(tile), SIGMA_MAX)
        f = f.reshape(-1, f.shape[-1])
        out.append(np.concatenate([f.mean(0), f.std(0)]))
    return np.stack(out).astype(np.float32)


def groups(desc: np.ndarray, k: int, covered: np.ndarray | None = None, seed: int = 0):
    """k-means of the standardised tile descriptors into ``k`` groups: (fitted k-means, standardised descriptors,
    the groups holding an annotated tile of ``covered``)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    allx = desc if covered is None or not len(covered) else np.vstack([desc, covered])
    mu, sd = allx.mean(0), allx.std(0) + 1e-6
    z = (desc - mu) / sd
    with warnings.catch_warnings():  # tiles alike (a blank image) make fewer distinct groups than asked: fine here
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=min(len(desc), k), n_init=4, random_state=seed).fit(z)
    taken = set() if covered is None or not len(covered) else set(km.predict((covered - mu) / sd).tolist())
    return km, z, taken


def pick(desc: np.ndarray, top: int, covered: np.ndarray | None = None, seed: int = 0) -> tuple[list[int], list[float]]:
    """Indices of ``top`` tiles (rows of ``desc``) covering the descriptor space, best first, and their scores (the
    share of the tiles their group holds). ``covered``: descriptors of annotated tiles, whose groups come last."""
    km, z, taken = groups(desc, top + (0 if covered is None else len(covered)), covered, seed)
    k = km.n_clusters
    sizes = np.bincount(km.labels_, minlength=k)
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


def novel_first(desc: np.ndarray, covered: np.ndarray, top: int, seed: int = 0) -> np.ndarray:
    """Per tile, whether its group (k-means, ``top`` groups more than annotated tiles) holds no annotated tile: the
    kinds of tile a model score should pick from first, so that it does not ask for more of what it has."""
    km, _, taken = groups(desc, top + len(covered), covered, seed)
    return ~np.isin(km.labels_, sorted(taken))
