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
from .geometry import Box, check_box, check_boxes_disjoint
from .image import as_image2d


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


def as_list(items, what: str) -> list:
    """``items`` (one entry per image) as a list; one sentence for None, a bare array or anything not a sequence."""
    if items is None or isinstance(items, (str, bytes, np.ndarray, dict)) or not hasattr(items, "__len__"):
        raise FewcellError(f"The {what} must be a list with one entry per image, not {type(items).__name__}.")
    return list(items)


def label_values(lab, what: str) -> np.ndarray:
    """Labels as int64 values: whole numbers (bool or whole floats are converted), none negative."""
    lab = np.asarray(lab)
    if not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype == bool or (np.issubdtype(lab.dtype, np.floating) and np.isfinite(lab).all()
                                 and (lab == np.round(lab)).all()):
            if lab.size and np.abs(lab).max() > 2**31:
                raise FewcellError(f"The {what} hold values up to {np.abs(lab).max():g}; class values must be "
                                   "0 (background) and 1..K for K classes.")
            lab = lab.astype(np.int64)
        else:
            raise FewcellError(f"The {what} must be whole numbers (0 = background, 1..K = classes).")
    if lab.size and lab.min() < 0:
        raise FewcellError(f"The {what} contain negative values; use 0 for background and 1..K for classes.")
    return lab.astype(np.int64)


def label_plane(lab, shape, name: str) -> np.ndarray:
    """The labels of image ``name``, checked to be of its height and width."""
    lab = np.asarray(lab)
    if lab.ndim == 3 and lab.shape[0] == 1:
        lab = lab[0]
    if lab.shape != tuple(shape):
        raise FewcellError(
            f"The labels of {name} are {'×'.join(map(str, lab.shape))} but the image is "
            f"{shape[0]}×{shape[1]}; give labels of exactly the image's height and width."
        )
    return label_values(lab, f"labels of {name}")


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
    lab = label_plane(labels, shape, name)
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


def class_index(labels: np.ndarray, known: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(H, W) int64 index of each known pixel's class in the sorted ``classes``; −1 where unknown."""
    idx = np.full(labels.shape, -1, np.int64)
    idx[known] = np.searchsorted(classes, labels[known])
    return idx


def check_annotations(data: Sequence[AnnotatedImage], need_unknown: bool = True) -> np.ndarray:
    """Sentences for what makes a set unusable; returns the class values."""
    if not data:
        raise FewcellError("No images were given; open or name at least one image.")
    if not any(d.known.any() for d in data):
        raise FewcellError(
            "No image has an annotated box; paint labels inside at least one box (Y X H W) of one image."
        )
    classes = class_values(data)
    require_two_classes(classes, "annotated boxes hold")
    if need_unknown and all(d.known.all() for d in data):
        raise FewcellError(
            "Every pixel is already annotated, so there is nothing to pseudo-label; "
            "add unannotated images or train a network on the labels directly."
        )
    return classes


def uniform_with_classes(pixels, labels) -> bool:
    """True for a region whose pixels all have one value (every channel) but whose labels hold two classes or more:
    nothing can tell its classes apart (a blank frame, the wrong channel). A blank region of one class is fine."""
    return len(np.unique(labels)) > 1 and np.ptp(np.asarray(pixels)) == 0


UNIFORM_HINT = ("so nothing tells its classes apart; put it where the structures are visible, or check that the "
                "right image (or channel) is open")


def require_two_classes(values, subject: str, advice: str = "paint at least one structure and some background") -> None:
    """The one sentence for labels that hold fewer than two classes: "The {subject} only class 1; {advice}."

    ``subject`` carries its verb ("prompt box holds", "support labels hold").
    """
    values = np.unique(np.asarray(values))
    if len(values) >= 2:
        return
    what = "nothing" if not len(values) else "background (0)" if values[0] == 0 else f"class {values[0]}"
    raise FewcellError(f"The {subject} only {what}; {advice}.")
