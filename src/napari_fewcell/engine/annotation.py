"""The one annotation convention, as data: images, their (partial) labels and the known mask.

An annotated region is a box ``(y, x, h, w)``; inside a box label value v means class v
(0 = background); outside boxes nothing is known — except pixels a user corrected in a
pseudo-label layer (``fixes``), which count as annotation too.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .errors import FewcellError
from .normalize import as_image2d
from .prompt import Box, check_box


@dataclasses.dataclass
class AnnotatedImage:
    """One 2D image with what is known of its labels."""

    image: np.ndarray  # (H, W, C) as from as_image2d
    labels: np.ndarray  # (H, W) int64 label values, meaningful where ``known``
    known: np.ndarray  # (H, W) bool
    boxes: list[Box]  # annotated boxes (prompt candidates)
    name: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]


def _as_label_plane(lab, shape, name: str) -> np.ndarray:
    lab = np.asarray(lab)
    if lab.ndim == 3 and lab.shape[0] == 1:
        lab = lab[0]
    if lab.shape != tuple(shape):
        raise FewcellError(
            f"The labels of {name} are {'×'.join(map(str, lab.shape))} but the image is "
            f"{shape[0]}×{shape[1]}; give labels of exactly the image's height and width."
        )
    if not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype == bool or (np.issubdtype(lab.dtype, np.floating) and np.isfinite(lab).all()
                                 and (lab == np.round(lab)).all()):
            lab = lab.astype(np.int64)
        else:
            raise FewcellError(f"The labels of {name} must be whole numbers (0 = background, 1..K = classes).")
    if lab.size and lab.min() < 0:
        raise FewcellError(f"The labels of {name} contain negative values; use 0 for background and 1..K for classes.")
    return lab.astype(np.int64)


def check_boxes_disjoint(boxes: Sequence[Box], name: str = "the image") -> None:
    for i, (y, x, h, w) in enumerate(boxes):
        for (y2, x2, h2, w2) in boxes[i + 1:]:
            if y < y2 + h2 and y2 < y + h and x < x2 + w2 and x2 < x + w:
                raise FewcellError(
                    f"The boxes {y} {x} {h} {w} and {y2} {x2} {h2} {w2} in {name} overlap; "
                    "draw annotated boxes that do not overlap (or merge them into one)."
                )


def annotate(image, labels=None, boxes: Sequence = (), fixes=None, name: str = "image",
             full: bool = False) -> AnnotatedImage:
    """Build an :class:`AnnotatedImage`.

    ``labels`` is None (unannotated) or an array of the image's height and width; ``boxes``
    are the annotated regions; ``fixes`` an optional bool mask of further known pixels (a
    user's corrections); ``full=True`` marks the whole image as known (one-shot fine-tuning).
    """
    arr = as_image2d(image, name)
    shape = arr.shape[:2]
    known = np.zeros(shape, bool)
    if labels is None:
        if fixes is not None or full:
            raise FewcellError(f"{name} has corrections or is marked fully labelled but has no labels.")
        return AnnotatedImage(arr, np.zeros(shape, np.int64), known, [], name)
    lab = _as_label_plane(labels, shape, name)
    checked = [check_box(b, shape, name) for b in boxes]
    check_boxes_disjoint(checked, name)
    for y, x, h, w in checked:
        known[y : y + h, x : x + w] = True
    if fixes is not None:
        fixes = np.asarray(fixes, bool)
        if fixes.shape != shape:
            raise FewcellError(f"The corrections mask of {name} does not match the image's shape.")
        known |= fixes
    if full:
        known[:] = True
    return AnnotatedImage(arr, lab, known, checked, name)


def class_values(data: Sequence[AnnotatedImage]) -> np.ndarray:
    """Sorted label values present in the known pixels of all images."""
    vals = set()
    for d in data:
        if d.known.any():
            vals.update(np.unique(d.labels[d.known]).tolist())
    return np.array(sorted(vals), dtype=np.int64)


def check_annotations(data: Sequence[AnnotatedImage], need_unknown: bool = True) -> np.ndarray:
    """Sentences for what makes a set unusable; returns the class values."""
    if not data:
        raise FewcellError("No images were given; open or name at least one image.")
    if not any(d.known.any() for d in data):
        raise FewcellError(
            "No image has an annotated box; paint labels inside at least one box (Y X H W) of one image."
        )
    classes = class_values(data)
    if len(classes) < 2:
        what = "background (0)" if classes[0] == 0 else f"class {classes[0]}"
        raise FewcellError(
            f"The annotated boxes hold only {what}; paint at least one structure and some background."
        )
    if need_unknown and all(d.known.all() for d in data):
        raise FewcellError(
            "Every pixel is already annotated, so there is nothing to pseudo-label; "
            "add unannotated images or train a network on the labels directly."
        )
    return classes


def planes_of(arr, name: str = "image") -> tuple[list[np.ndarray], bool]:
    """Split an image into 2D planes: (H, W), (H, W, 1|3|4) → one plane; (Z, H, W) or (Z, H, W, 3|4) → Z planes.

    Returns (planes, is_stack).
    """
    a = np.asarray(arr)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3, 4)):
        return [a], False
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (3, 4)):
        return [a[z] for z in range(a.shape[0])], True
    raise FewcellError(
        f"The {name} has shape {a.shape}; expected a 2D image (H×W, or H×W×3 colour) or a stack of them (Z×H×W)."
    )
