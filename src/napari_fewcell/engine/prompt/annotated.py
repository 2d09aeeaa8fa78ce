"""The annotated parts of a prompt (boxes, correction strokes) as adaptation sees them, and how the self-check
groups and scores their pixels (see :mod:`.adapt`)."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np
import torch

from ..core.annotation import UNIFORM_HINT, label_values, require_two_classes, uniform_with_classes
from ..core.errors import FewcellError
from ..core.geometry import Box, with_context
from ..core.image import normalize
from .filters import SAMPLE_PIXELS, pixel_sample

CONTEXT = 64  #: pixels of the prompt image kept around the box (filters of the box, fine-tuning)
#: the self-check, and the forest fitted for the prompt, read at most about this many pixels of one part (a box of
#: 128² or less, each box of a partial-labels run, is read whole: its results are as before): the check's held-out
#: attention ran from every box pixel, and its forests predicted every one, so a whole-image box of 520×696 took 35 s
#: to check on 2 cores (a 64×64 box 1 s); the pixels of one box are so alike that a sample tells the paths apart
PART_PIXELS = SAMPLE_PIXELS


def quadrants(h: int, w: int) -> np.ndarray:
    """(h·w,) quadrant 0..3 of each pixel of an h×w box (row major)."""
    rows = np.arange(h)[:, None] >= h // 2
    cols = np.arange(w)[None, :] >= w // 2
    return (rows * 2 + cols).reshape(-1)


def mean_dice(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Mean over the classes present in ``truth`` of their Dice; None when ``truth`` holds one class."""
    classes = np.unique(truth)
    if len(classes) < 2:
        return None
    dice = [2 * np.sum((pred == c) & (truth == c)) / (np.sum(pred == c) + np.sum(truth == c)) for c in classes]
    return float(np.mean(dice))


@dataclasses.dataclass
class PromptSource:
    """One annotated part of a prompt, kept for adaptation: a normalised (3, h, w) region of the prompt image
    around a rectangle (a box, or the bounding box of a correction stroke), the rectangle in it, and which of the
    rectangle's pixels are labelled (``mask``; None: all of them, a whole box)."""

    region: np.ndarray
    offset: tuple[int, int]  #: the rectangle's top-left corner in the region
    shape: tuple[int, int]  #: the rectangle's (h, w)
    mask: np.ndarray | None = None  #: (h, w) bool: the labelled pixels (None: the whole rectangle)
    kind: str = "box"  #: "box" or "stroke" (a correction)

    @classmethod
    def cut(cls, arr: np.ndarray, rng, box: Box, mask: np.ndarray | None = None, kind: str = "box") -> "PromptSource":
        y0, y1, x0, x1 = with_context(box, CONTEXT, arr.shape[:2])
        return cls(normalize(arr[y0:y1, x0:x1], rng), (box[0] - y0, box[1] - x0), tuple(box[2:]), mask, kind)

    @property
    def box(self) -> tuple[slice, slice]:
        (oy, ox), (h, w) = self.offset, self.shape
        return slice(oy, oy + h), slice(ox, ox + w)

    @property
    def size(self) -> int:
        """The number of labelled pixels."""
        return int(self.shape[0] * self.shape[1] if self.mask is None else self.mask.sum())

    def take(self, a: np.ndarray) -> np.ndarray:
        """(N, ...) the labelled pixels (row major) of an (h, w, ...) array over the rectangle."""
        return a.reshape(-1, *a.shape[2:]) if self.mask is None else a[self.mask]

    def put(self, values: np.ndarray, fill) -> np.ndarray:
        """The (h, w) rectangle holding ``values`` (N,) at the labelled pixels and ``fill`` elsewhere."""
        out = np.full(self.shape, fill, values.dtype)
        out[(slice(None), slice(None)) if self.mask is None else self.mask] = \
            values.reshape(self.shape) if self.mask is None else values
        return out

    def quadrants(self) -> np.ndarray:
        """(N,) the quadrant 0..3 of the rectangle of each labelled pixel."""
        return self.take(quadrants(*self.shape).reshape(self.shape))

    def positions(self) -> np.ndarray:
        """(N, 2) (row, column) in the rectangle of each labelled pixel."""
        return self.take(np.stack(np.indices(self.shape), -1))


def as_sources(source) -> list[PromptSource]:
    return list(source) if isinstance(source, (list, tuple)) else [source]


#: the self-check holds out at most this many groups of boxes (box k of the fixed order in group k mod 5): with many
#: boxes (workflow 2 labels from one per image) each held-out fit costs seconds, and 5 folds tell the paths apart
MAX_GROUPS = 5


def pixel_groups(sources: list[PromptSource]) -> np.ndarray:
    """(M,) the self-check's held-out group of each labelled pixel of the parts, in order. With one box (and any
    correction strokes): the box's four quadrants (0..3), each stroke a group of its own; with several boxes, each
    box a group of its own up to :data:`MAX_GROUPS` (then box k in group k mod MAX_GROUPS: the check predicts each
    box from the boxes of other groups, no neighbouring pixels in training), each stroke a group of its own."""
    n_boxes = sum(s.kind == "box" for s in sources)
    out, box, g = [], 0, 4 if n_boxes == 1 else min(n_boxes, MAX_GROUPS)
    for s in sources:
        if n_boxes == 1 and s.kind == "box":
            out.append(s.quadrants())
        elif s.kind == "box":
            out.append(np.full(s.size, box % MAX_GROUPS, np.int64))
            box += 1
        else:
            out.append(np.full(s.size, g, np.int64))
            g += 1
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def box_pixels(sources: list[PromptSource]) -> np.ndarray:
    """(M,) True for the labelled pixels of boxes, False for those of correction strokes, in the parts' order."""
    return np.concatenate([np.full(s.size, s.kind == "box") for s in sources])


@dataclasses.dataclass
class BoxData:
    """What the self-check and the paths read of a prompt: the embeddings of its labelled pixels by the shared
    network, class indices, the parts (:class:`PromptSource`, one or a list) and the temperature (plus the
    held-out group of each pixel: :func:`pixel_groups`)."""

    emb: torch.Tensor  #: (M, D) on CPU
    y: np.ndarray  #: (M,) class index 0..C-1
    source: PromptSource | list[PromptSource]
    tau: float
    #: pixels of the other quadrants this close (Chebyshev) to the held-out one are not trained on in the self-check
    buffer: int = 0
    stroke_use: str = "both"  #: PromptParams.stroke_use: whether strokes are attention keys, forest pixels or both
    check_strokes: bool = True  #: PromptParams.check_strokes: whether the self-check's fits learn from strokes

    def __post_init__(self):
        self.sources = as_sources(self.source)
        self.quad = pixel_groups(self.sources)
        self.n_classes = int(self.y.max()) + 1
        ends = np.cumsum([s.size for s in self.sources])
        self.spans = [slice(int(e - s.size), int(e)) for e, s in zip(ends, self.sources)]
        #: the pixels the self-check scores: those of boxes (a correction stroke marks hard pixels on purpose; it
        #: is learnt from, never scored, so the estimate stays one of Dice on the boxes)
        self.scored = box_pixels(self.sources)
        self.held_groups = np.unique(self.quad[self.scored])
        #: the scored pixels of the groups every path can be scored on: each class of the group is among the pixels
        #: learnt from without it. A class found in one quadrant only cannot be predicted there, so that quadrant
        #: would score every path alike and low (a TEM box with its background in one corner: 0.40 for each path,
        #: 0.75–0.79 got on the images)
        self.fair = self.scored & np.isin(self.quad, [q for q in self.held_groups if self.learnable(q)])
        #: the pixels attention may take as keys and those the forests may learn from (strokes: ``stroke_use``)
        self.keyed = self.scored | (self.stroke_use in ("both", "attention"))
        self.taught = self.scored | (self.stroke_use in ("both", "forest"))

    def sampled(self, cap: int = PART_PIXELS) -> "BoxData":
        """This prompt with each part of more than ``cap`` labelled pixels read at a sample of about ``cap`` of them
        (:func:`part_sample`), so that the check's work grows with the number of parts, not with their area; itself
        when no part is that big. A sampled part keeps its region and rectangle (its ``mask`` is the sample), so its
        filters, quadrants and positions are those of the whole part."""
        if all(s.size <= cap for s in self.sources):
            return self
        rows, parts = [], []
        for s, span in zip(self.sources, self.spans):
            keep = part_sample(s, self.y[span], cap)
            if len(keep) < s.size:
                labelled = np.arange(s.shape[0] * s.shape[1]) if s.mask is None else np.flatnonzero(s.mask)
                mask = np.zeros(s.shape[0] * s.shape[1], bool)
                mask[labelled[keep]] = True
                s = dataclasses.replace(s, mask=mask.reshape(s.shape))
            parts.append(s)
            rows.append(span.start + keep)
        rows = np.concatenate(rows)
        return dataclasses.replace(self, emb=self.emb[torch.from_numpy(rows)], y=self.y[rows], source=parts)

    def boxes_key(self) -> str | None:
        """A digest of everything a self-check that reads the boxes alone depends on (the boxes' regions, places and
        classes); None when the check learns from the strokes too (``check_strokes``)."""
        if self.check_strokes:
            return None
        digest = hashlib.sha1(self.y[self.scored].astype(np.int64).tobytes())
        for s in self.sources:
            if s.kind == "box":
                digest.update(np.ascontiguousarray(s.region).tobytes())
                digest.update(repr((s.region.shape, s.offset, s.shape)).encode())
                digest.update(b"" if s.mask is None else np.packbits(s.mask).tobytes())
        return digest.hexdigest()

    def learnable(self, q: int) -> bool:
        """Whether every class of group ``q``'s box pixels is among the pixels a path checked on it learns from."""
        return bool(np.isin(self.y[self.scored & (self.quad == q)], self.y[self.train_mask(q)]).all())

    def score(self, pred: np.ndarray) -> float | None:
        """The self-check's score of held-out predictions (M,): the mean per-class Dice of the pixels of every group
        it can score (:attr:`fair`) together, as a whole image is scored; None when they hold one class or none (the
        check cannot tell the paths apart). Not a mean over groups: a quadrant of 32×32 holding a few pixels of a
        class turns one missed edge into a low Dice, so attention read 0.67–0.79 on DSB boxes that got 0.94–0.95
        (studies/study_check_score.py)."""
        if not self.fair.any():
            return None
        return mean_dice(pred[self.fair], self.y[self.fair])

    def train_mask(self, q: int) -> np.ndarray:
        """(M,) the pixels a path checked on group ``q`` may learn from: the other groups, minus a band of
        ``buffer`` pixels around ``q`` in its part (neighbours of the held-out pixels share their filters and
        objects). Correction strokes are among them unless ``check_strokes`` is False."""
        other = (self.quad != q) & (self.scored | self.check_strokes)
        if self.buffer <= 0:
            return other
        i = next(i for i, span in enumerate(self.spans) if (self.quad[span] == q).any())
        span, pos = self.spans[i], self.sources[i].positions()
        held = pos[self.quad[span] == q]
        (r0, c0), (r1, c1), b = held.min(0), held.max(0), self.buffer
        near = np.zeros(len(self.quad), bool)
        near[span] = (pos[:, 0] >= r0 - b) & (pos[:, 0] <= r1 + b) & (pos[:, 1] >= c0 - b) & (pos[:, 1] <= c1 + b)
        far = other & ~near
        return far if far.any() else other  # a buffer wider than the box: no buffer


def part_sample(s: PromptSource, y: np.ndarray, cap: int = PART_PIXELS) -> np.ndarray:
    """Indices (in order) of at most about ``cap`` of the labelled pixels of part ``s`` (classes ``y``): each class of
    each quadrant of its rectangle in proportion, and at least SAMPLE_CLASS_MIN of it (or all it has), so that every
    held-out quadrant keeps the classes it had. Seeded (:func:`pixel_sample`): the same part gives the same sample."""
    return pixel_sample(np.asarray(y, np.int64) * 4 + s.quadrants(), cap)


def require_prompt(prompt, kind):
    """``prompt`` when it is a ``kind`` (a :class:`~.segmenter.Prompt`), else one sentence."""
    if not isinstance(prompt, kind):
        raise FewcellError(f"Expected a prompt made by Segmenter.prepare_prompt (or prepare_prompt_boxes), not "
                           f"{type(prompt).__name__}; prepare the prompt first.")
    return prompt


# ----------------------------------------------------------------------------- the labels of a box
ONE_CLASS_HINT = ("one class cannot be segmented against nothing — paint at least one structure and leave (or "
                  "paint) some background in the box")


def require_contrast(parts) -> None:
    """One sentence for a box whose pixels all have one value but which holds two classes or more
    (:func:`uniform_with_classes`). ``parts``: (embeddings, :class:`PromptSource`, labels) triples."""
    boxes = [(s, values) for _, s, values in parts if s.kind == "box"]
    for s, values in boxes:
        if uniform_with_classes(s.region[(slice(None), *s.box)], values):
            which = "The prompt box is" if len(boxes) == 1 else "A prompt box is"
            raise FewcellError(f"{which} uniform (every pixel has the same value), {UNIFORM_HINT}.")


def crop_prompt_labels(labels, box: Box, image_shape: tuple[int, int], require: bool = True,
                       several: bool = False) -> np.ndarray:
    """Labels of the box, from labels the size of the prompt image (a numpy, dask or zarr array: only the box is
    read) or, unless ``several`` boxes share them, exactly the box's size; ``require``: two classes at least."""
    lab = labels if hasattr(labels, "shape") and hasattr(labels, "__getitem__") else np.asarray(labels)
    if lab.ndim == 3 and lab.shape[0] == 1:
        lab = lab[0]
    y, x, h, w = box
    if tuple(lab.shape) == tuple(image_shape):
        lab = np.asarray(lab[y : y + h, x : x + w])
    elif several or tuple(lab.shape) != (h, w):
        size = f"({image_shape[0]}×{image_shape[1]})" + ("" if several else f" or of the box ({h}×{w})")
        raise FewcellError(f"The prompt labels are {'×'.join(map(str, lab.shape))} but must be the size of the "
                           f"prompt image {size}.")
    lab = label_values(np.asarray(lab), "prompt labels")
    if require:
        require_two_classes(lab, "prompt box holds", ONE_CLASS_HINT)
    return lab


def later_boxes_mask(box: Box, later: Sequence[Box]) -> np.ndarray:
    """(h, w) True where no later box covers the pixel of ``box`` (the later box wins where two overlap)."""
    y, x, h, w = box
    keep = np.ones((h, w), bool)
    for ly, lx, lh, lw in later:
        keep[max(0, ly - y) : max(0, ly + lh - y), max(0, lx - x) : max(0, lx + lw - x)] = False
    return keep


def sparse_share(y: np.ndarray) -> float:
    """The share of the prompt's pixels ``y`` (class indices) held by its thinnest class (0 for one class)."""
    counts = np.bincount(np.asarray(y, np.int64))
    counts = counts[counts > 0]
    return float(counts.min() / counts.sum()) if len(counts) > 1 else 0.0
