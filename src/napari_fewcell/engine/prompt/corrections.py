"""Corrections: pixels the user changed in a result (a brush stroke, a fill, an erasure) become prompt keys.

A correction array is the size of the image: −1 where nothing is known, v ≥ 0 where the user says the pixel is
class v (0 = background, e.g. a false detection erased). It is made from a result and the user's edited copy of
it (:func:`corrections_from_edit`), merged over successive edits (:func:`merge_corrections`), turned into the
prompt's stroke parts (:func:`correction_parts`, used by ``Segmenter.prepare_prompt_boxes``), and kept in the
next result (:func:`apply_corrections`: what the user painted is never undone).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..core.annotation import label_values
from ..core.errors import FewcellError
from ..core.geometry import Box, box_values
from ..core.image import as_image2d
from ..core.lazy import LazyImage

JOIN = 8  #: strokes closer than this many pixels share one rectangle (one read of the image, one embedding)
PART_EDGE = 512  #: a bigger rectangle (a flood fill, say) is cut into rectangles of at most this edge ...
#: ... each keeping at most this many of its corrected pixels (a seeded draw). Chosen on train images of three
#: leave-one-out sets (benchmarks/studies/choose_stroke_weight.py --part-pixels): a stroke of ~700 px kept whole
#: made the default path worse on one set of three, and 128 of its pixels made it better on all three (mean Dice
#: 66.4 one box → 72.9; 2,048 px: 66.8, 512: 68.1, 32: 73.4 but no gain on the attention-only path)
PART_PIXELS = 128
NONE = -1  #: "not corrected"
REACH = 64  #: with ``PromptParams.stroke_reach`` "local", a stroke changes labels at most this many pixels from it


def empty_corrections(shape) -> np.ndarray:
    return np.full(tuple(shape), NONE, np.int32)


def corrections_from_edit(produced, edited, boxes: Sequence[Box] = (), foreground: int | None = None) -> np.ndarray:
    """The corrections in ``edited`` (the user's copy of a result) against ``produced`` (the result as made):
    every changed pixel outside the boxes, with its new value. ``foreground``: the result was instances (one id
    per object), so a changed pixel's class is ``foreground`` where it is non-zero, background where 0."""
    produced, edited = np.asarray(produced), np.asarray(edited)
    if produced.shape != edited.shape:
        raise FewcellError(f"The edited result is {'×'.join(map(str, edited.shape))} but the result it corrects is "
                           f"{'×'.join(map(str, produced.shape))}: correct the result layer itself, not a copy of "
                           "another size.")
    changed = edited != produced
    out = empty_corrections(edited.shape)
    values = label_values(edited[changed], "edited result's labels")
    out[changed] = values if foreground is None else np.where(values > 0, foreground, 0)
    for y, x, h, w in (box_values(b) for b in boxes):
        out[..., y : y + h, x : x + w] = NONE
    return out


def merge_corrections(old: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """Earlier corrections with later ones on top."""
    return new if old is None or old.shape != new.shape else np.where(new != NONE, new, old).astype(np.int32)


def apply_corrections(labels: np.ndarray, corrections: np.ndarray | None) -> np.ndarray:
    """``labels`` with the corrected pixels set to the user's values (a copy)."""
    out = np.array(labels, copy=True)
    if corrections is not None:
        corrections = np.asarray(corrections)
        if corrections.shape != out.shape:
            raise FewcellError(f"The corrections are {'×'.join(map(str, corrections.shape))} but the labels are "
                               f"{'×'.join(map(str, out.shape))}; give corrections of the labels' shape.")
        marked = corrections != NONE
        values = label_values(corrections[marked], "corrections")
        if out.dtype.kind in "ui" and values.size and values.max() > np.iinfo(out.dtype).max:
            out = out.astype(np.uint32)  # a class value above the labels' type: never wrapped around
        out[marked] = values.astype(out.dtype)
    return out


def local_changes(before, after, corrections, reach: int = REACH) -> np.ndarray:
    """The result ``after`` kept only near the strokes: ``before`` (the labels the strokes were painted on) with the
    pixels where ``after`` differs and that are 8-connected to a corrected pixel within ``reach`` px of one, and the
    corrected pixels' own values. 2D, or a stack plane by plane (a plane without a stroke stays as it was)."""
    before, after, corr = np.asarray(before), np.asarray(after), np.asarray(corrections)
    if not before.shape == after.shape == corr.shape:
        raise FewcellError(f"The corrected result is {'×'.join(map(str, before.shape))} but the new one is "
                           f"{'×'.join(map(str, after.shape))}: correct and segment the same image.")
    if before.ndim > 2:
        return np.stack([local_changes(b, a, c, reach) for b, a, c in zip(before, after, corr)])
    out = np.array(before, copy=True)
    stroke = corr != NONE
    if stroke.any():
        near = (after != before) & (ndi.distance_transform_edt(~stroke) <= reach) | stroke
        groups, _ = ndi.label(near, structure=np.ones((3, 3), bool))
        keep = np.isin(groups, np.unique(groups[stroke]))
        out[keep] = after[keep]
    return apply_corrections(out, corr)


def correction_sets(image: LazyImage, corrections) -> list[tuple[LazyImage, np.ndarray]]:
    """(image, corrections) pairs: ``corrections`` is None, one array on ``image``, or (image, array) pairs."""
    if corrections is None:
        return []
    if hasattr(corrections, "shape"):
        pairs = [(image, corrections)]
    else:
        pairs = [(img if isinstance(img, LazyImage) else LazyImage(as_image2d(img, "corrected image"),
                                                                    "corrected image"), corr)
                 for img, corr in corrections]
    for img, corr in pairs:
        if tuple(np.shape(corr)) != tuple(img.shape):
            raise FewcellError(f"The corrections are {'×'.join(map(str, np.shape(corr)))} but must be the size of "
                               f"the image they correct ({img.shape[0]}×{img.shape[1]}).")
    return pairs


def correction_parts(corrections, boxes: Sequence[Box]) -> tuple[list[tuple[Box, np.ndarray, np.ndarray]], int, int]:
    """The strokes of a correction array as prompt parts: [(rectangle (y, x, h, w), mask (h, w), values (N,))],
    strokes closer than :data:`JOIN` px sharing a rectangle, each part thinned to :data:`PART_PIXELS`; the number
    of corrected pixels inside a box (ignored: the box's labels win); and the number outside the boxes."""
    corr = np.asarray(corrections)
    marked = corr != NONE
    if marked.any() and corr[marked].min() < 0:
        raise FewcellError("Corrections are −1 (not corrected) or a class 0, 1, 2, …")
    inbox = np.zeros(corr.shape, bool)
    for y, x, h, w in boxes:
        inbox[y : y + h, x : x + w] = True
    inside = int((marked & inbox).sum())
    marked &= ~inbox
    if not marked.any():
        return [], inside, 0
    groups, _ = ndi.label(ndi.binary_dilation(marked, np.ones((3, 3), bool), iterations=JOIN // 2) & ~inbox | marked)
    parts = []
    for k, sl in enumerate(ndi.find_objects(groups), start=1):
        for ty in range(sl[0].start, sl[0].stop, PART_EDGE):
            for tx in range(sl[1].start, sl[1].stop, PART_EDGE):
                tile = (slice(ty, min(ty + PART_EDGE, sl[0].stop)), slice(tx, min(tx + PART_EDGE, sl[1].stop)))
                part = stroke_part(corr, marked[tile] & (groups[tile] == k), (ty, tx), k)
                if part is not None:
                    parts.append(part)
    return parts, inside, int(marked.sum())


def stroke_part(corr: np.ndarray, mask: np.ndarray, corner: tuple[int, int], seed: int):
    """(rectangle, mask, values) of the corrected pixels ``mask`` of the rectangle at ``corner``, cropped to them
    and thinned to :data:`PART_PIXELS`; None if there are none."""
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = mask[y0:y1, x0:x1].copy()
    if mask.sum() > PART_PIXELS:
        idx = np.flatnonzero(mask)
        mask.reshape(-1)[np.random.default_rng(seed).permutation(idx)[PART_PIXELS:]] = False
    rect = (corner[0] + int(y0), corner[1] + int(x0), int(y1 - y0), int(x1 - x0))
    values = corr[rect[0] : rect[0] + rect[2], rect[1] : rect[1] + rect[3]][mask]
    return rect, mask, values.astype(np.int64)
