"""What a perceptron's fit reads from its support images (workflow 3): the support pairs, their pooled intensity
range, and the features and labels of a sample of their known pixels."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..core.annotation import AnnotatedImage, annotate
from ..core.errors import FewcellError
from ..core.image import as_image2d, intensity_range, range_of_sample, strided_sample
from . import features
from .features import Extractors


def support(image, labels, boxes: Sequence = (), name: str = "support image") -> AnnotatedImage:
    """One support pair: labels known inside ``boxes``, or everywhere when there are no boxes."""
    if labels is None:
        raise FewcellError(f"{name} has no labels; give a label image of its size (0 = background, 1..K = classes).")
    return annotate(image, labels, boxes, name=name, full=not len(boxes))


def support_pixels(fx: Extractors, d: AnnotatedImage, rows: np.ndarray, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features (n, F), labels (n,)) of the chosen pixels ``rows`` (flat indices) of a support image. An image the
    extractors tile (over TILE²) that is annotated in boxes only gets its features box by box, each box with the
    tiles' context (MARGIN): a 2048² image is 1.9 GB of features, too big to cache, and a refit after one more box
    then computes only that box. A smaller image's features are computed whole (and cached for predicting it)."""
    H, W = d.shape
    inside = np.zeros((H, W), bool)
    for y, x, h, w in d.boxes:
        inside[y : y + h, x : x + w] = True
    if fx.n_tiles((H, W)) == 1 or not d.boxes or (d.known & ~inside).any():
        feats = fx.features(d.image, rng)
        yield feats.reshape(feats.shape[0], -1)[:, rows].T, d.labels.ravel()[rows]
        return
    span = intensity_range(d.image) if rng is None else rng  # the whole image's range, as when it is predicted
    yy, xx = np.divmod(rows, W)
    m = features.MARGIN
    for y, x, h, w in d.boxes:
        mine = (yy >= y) & (yy < y + h) & (xx >= x) & (xx < x + w)
        if not mine.any():
            continue
        y0, x0, y1, x1 = max(0, y - m), max(0, x - m), min(H, y + h + m), min(W, x + w + m)
        feats = fx.features(d.image[y0:y1, x0:x1], span)
        local = (yy[mine] - y0) * (x1 - x0) + (xx[mine] - x0)
        yield feats.reshape(feats.shape[0], -1)[:, local].T, d.labels.ravel()[rows[mine]]


def support_range(data: Sequence[AnnotatedImage]) -> tuple[np.ndarray, np.ndarray]:
    """One (low, high) intensity range for all support images: the percentiles of their pooled pixel samples."""
    arrs = [as_image2d(d.image) for d in data]
    return range_of_sample(np.concatenate([strided_sample(a) for a in arrs]), arrs[0].shape[-1])


def sample_pixels(data: Sequence[AnnotatedImage], max_pixels: int, rng: np.random.Generator,
                   per_class: int = 200) -> list[np.ndarray]:
    """Flat indices of the known pixels used per image: a uniform sample of ``max_pixels`` in all, plus
    up to ``per_class`` pixels of every class, so that a class painted on a few pixels is never lost."""
    rows = [np.flatnonzero(d.known.ravel()) for d in data]
    labels = np.concatenate([d.labels.ravel()[r] for d, r in zip(data, rows)])
    owner = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    flat = np.concatenate(rows)
    if len(flat) <= max_pixels:
        pick = np.arange(len(flat))
    else:
        pick = [rng.choice(len(flat), max_pixels, replace=False)]
        for v in np.unique(labels):
            members = np.flatnonzero(labels == v)
            pick.append(rng.choice(members, min(per_class, len(members)), replace=False))
        pick = np.unique(np.concatenate(pick))
    return [np.sort(flat[pick[owner[pick] == i]]) for i in range(len(data))]
