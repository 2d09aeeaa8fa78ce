"""Boxes ``(y, x, h, w)``: checking them against an image, overlap, tiles covering an image, and
padding a tensor to the multiple a network needs."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from .errors import FewcellError

Box = tuple[int, int, int, int]  # y, x, h, w


def box_values(box: Iterable[float]) -> Box:
    """A (y, x, h, w) box as four whole numbers (rounded), or one sentence for anything else."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise FewcellError("A box is four numbers: Y X H W (top, left, height, width).") from None
    if len(values) != 4:
        raise FewcellError(f"A box is four numbers: Y X H W (top, left, height, width), not {len(values)}.")
    if not all(math.isfinite(v) for v in values):
        raise FewcellError(f"The box {' '.join(f'{v:g}' for v in values)} holds a value that is not a finite number; "
                           "give Y X H W (top, left, height, width) in pixels.")
    y, x, h, w = (int(round(v)) for v in values)
    return y, x, h, w


def check_box(box: Iterable[int], shape: tuple[int, int], name: str = "prompt image") -> Box:
    """Validate a (y, x, h, w) box against an image shape."""
    y, x, h, w = box_values(box)
    if h <= 0 or w <= 0:
        raise FewcellError(f"The box {y} {x} {h} {w} is empty; give it a positive height and width.")
    if y < 0 or x < 0 or y + h > shape[0] or x + w > shape[1]:
        raise FewcellError(
            f"The box Y={y} X={x} H={h} W={w} is not inside the {name} ({shape[0]}×{shape[1]}); "
            "move or shrink it so it lies within the image."
        )
    return y, x, h, w


def overlaps(a: Box, b: Box) -> bool:
    """Whether two (y, x, h, w) boxes share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def check_boxes_disjoint(boxes: Sequence[Box], name: str = "the image") -> None:
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if overlaps(a, b):
                raise FewcellError(
                    f"The boxes {' '.join(map(str, a))} and {' '.join(map(str, b))} in {name} overlap; "
                    "draw annotated boxes that do not overlap (or merge them into one)."
                )


def with_context(box: Box, context: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): ``box`` grown by ``context`` pixels on every side, clipped to ``shape``."""
    y, x, h, w = box
    return max(0, y - context), min(shape[0], y + h + context), max(0, x - context), min(shape[1], x + w + context)


def tile_boxes(shape: tuple[int, int], tile: int) -> list[Box]:
    """Full-size square tiles covering an image; the last row and column are flush with its edge."""
    H, W = shape

    def starts(n):
        s = list(range(0, n - tile + 1, tile))
        return s + [n - tile] if s[-1] + tile < n else s

    return [(y, x, tile, tile) for y in starts(H) for x in starts(W)]


def pad_to_multiple(x: torch.Tensor, m: int, mode: str = "auto") -> tuple[torch.Tensor, int, int]:
    """Pad the bottom and right of ``x`` (…, H, W) to multiples of ``m``; returns (padded, H, W).

    ``mode`` "auto" reflects where the padding is smaller than the image and replicates otherwise;
    any mode of ``torch.nn.functional.pad`` is taken as it is.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        if mode == "auto":
            mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w
