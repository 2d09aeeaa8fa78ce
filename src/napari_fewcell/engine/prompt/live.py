"""Live re-segmentation while the user paints (issue 14, item 2): numpy/torch in, numpy patches out; no Qt.

A :class:`LiveSession` holds one 2D image and the embedding network's output for it, tile by tile, computed once
(the tiles and context of ``Segmenter.segment``, so the attention's labels are the same pixel for pixel). A new
prompt then costs only the attention: :meth:`LiveSession.run` labels the pixels in view by attention first
(:data:`VIEW_DONE`), then adapts to the prompt and labels the view's tiles by the chosen path (:data:`VIEW_FINAL`;
at once if the path is attention alone), then the rest of the image. It yields :class:`Progress` and
:class:`Patch` (a labelled rectangle to paint into the result); the caller stops it (closes the generator) when a
newer prompt arrives.
"""
from __future__ import annotations

import dataclasses
from typing import Generator, Sequence

import numpy as np
import torch

from ..core.image import as_image2d, intensity_range
from ..core.progress import Progress
from ..core.tiling import Window, windows
from ..nets import attention
from .filters import FEATURE_MARGIN
from .segmenter import Prompt, Segmenter

VIEW_DONE = "view done"  #: the Progress message after the view's first (attention) patches
VIEW_FINAL = "view final"  #: ... and after the view's tiles by the prompt's chosen path


@dataclasses.dataclass
class Patch:
    """Labels of the rectangle ``rows`` × ``cols`` of the image; ``final``: by the prompt's chosen path (else by
    attention alone, ahead of an adapted pass)."""

    rows: slice
    cols: slice
    labels: np.ndarray
    final: bool


def view_box(view, shape) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a view ((y0, x0), (y1, x1)) clipped to the image (None: the whole image)."""
    if view is None:
        return 0, shape[0], 0, shape[1]
    (y0, x0), (y1, x1) = np.asarray(view, int)[:2, -2:]
    y0, y1 = sorted((int(np.clip(y0, 0, shape[0])), int(np.clip(y1, 0, shape[0]))))
    x0, x1 = sorted((int(np.clip(x0, 0, shape[1])), int(np.clip(x1, 0, shape[1]))))
    return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else (0, shape[0], 0, shape[1])


class LiveSession:
    """One image, its embeddings cached per tile, re-segmented for each new prompt, the view first."""

    def __init__(self, seg: Segmenter, image):
        self.seg = seg
        self.arr = as_image2d(image)
        self.shape = self.arr.shape[:2]
        self.rng = intensity_range(self.arr)
        p = seg.params
        self.tiles: list[Window] = windows(self.shape, p.tile, p.margin)
        self.feature_tiles: list[Window] = windows(self.shape, p.tile, FEATURE_MARGIN)
        self.cache: dict[int, torch.Tensor] = {}

    def embedding(self, i: int) -> torch.Tensor:
        """(D, h, w) float16 embeddings of tile ``i`` (computed once)."""
        if i not in self.cache:
            win = self.tiles[i]
            emb = self.seg.embed(self.arr, self.rng, *win.region)[(slice(None), *win.inner)]
            self.cache[i] = emb.to(torch.float16)
        return self.cache[i]

    def region_embeddings(self, rect) -> torch.Tensor:
        """(h·w, D) float32 embeddings of the rectangle (y, x, h, w) from the cached tiles (a prompt box on this
        image costs no network run: ``Segmenter.prepare_prompt_boxes(..., embeddings=...)``)."""
        y, x, h, w = rect
        out = None
        for i, t in enumerate(self.tiles):
            y0, y1, x0, x1 = max(y, t.ty), min(y + h, t.ty1), max(x, t.tx), min(x + w, t.tx1)
            if y1 <= y0 or x1 <= x0:
                continue
            emb = self.embedding(i)
            out = torch.empty(emb.shape[0], h, w) if out is None else out
            out[:, y0 - y : y1 - y, x0 - x : x1 - x] = emb[:, y0 - t.ty : y1 - t.ty, x0 - t.tx : x1 - t.tx].float()
        return out.reshape(out.shape[0], -1).T.contiguous()

    def embed_iter(self, view=None) -> Generator[Progress, None, None]:
        """Fill the cache, the tiles in view first (e.g. when live mode is switched on, before any stroke)."""
        order = self.order(view_box(view, self.shape))
        for n, i in enumerate(order):
            self.embedding(i)
            yield Progress(n + 1, len(order), "reading the image")

    def order(self, box: Sequence[int]) -> list[int]:
        """Tile indices: those meeting the view first, then the others by distance to the view's centre."""
        y0, y1, x0, x1 = box
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2

        def rank(i):
            t = self.tiles[i]
            meets = t.ty < y1 and t.ty1 > y0 and t.tx < x1 and t.tx1 > x0
            return (not meets, abs((t.ty + t.ty1) / 2 - cy) + abs((t.tx + t.tx1) / 2 - cx))

        return sorted(range(len(self.tiles)), key=rank)

    def attend(self, i: int, keys: attention.PromptKeys, part=None) -> tuple[slice, slice, torch.Tensor]:
        """Class probabilities (h·w, C) of tile ``i`` (or of its rectangle ``part`` = (y0, y1, x0, x1) in image
        coordinates) by attention over the cached embeddings, with the rows and columns they cover."""
        t = self.tiles[i]
        y0, y1, x0, x1 = part or (t.ty, t.ty1, t.tx, t.tx1)
        y0, y1, x0, x1 = max(y0, t.ty), min(y1, t.ty1), max(x0, t.tx), min(x1, t.tx1)
        emb = self.embedding(i)[:, y0 - t.ty : y1 - t.ty, x0 - t.tx : x1 - t.tx]
        with torch.inference_mode():
            probs = attention.attend(emb.reshape(emb.shape[0], -1).T.float().to(self.seg.device), keys, self.seg.tau)
        return slice(y0, y1), slice(x0, x1), probs

    def labels(self, probs: torch.Tensor, classes: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        lut = classes[probs.argmax(1).cpu().numpy()]
        return lut.reshape(rows.stop - rows.start, cols.stop - cols.start)

    def run(self, prompt: Prompt, view=None) -> Generator[Progress | Patch, None, None]:
        """Attention in view, then the chosen path in view, then the chosen path elsewhere: Patches."""
        keys = self.seg.keys(prompt)
        box = view_box(view, self.shape)
        order = self.order(box)
        shown = [i for i in order if self.meets(i, box)]
        for i in shown:  # the view: only its pixels
            rows, cols, probs = self.attend(i, keys, box)
            yield Patch(rows, cols, self.labels(probs, keys.classes, rows, cols), False)
        yield Progress(0, 0, VIEW_DONE)
        ad = yield from self.seg.adapt_iter(prompt)
        yield from self.final_pass(prompt, ad, order, len(shown))

    def final_pass(self, prompt: Prompt, ad, order: list[int], shown: int) -> Generator[Progress | Patch, None, None]:
        """Every tile by the prompt's chosen path (the tiles of ``Segmenter.segment``: the same labels), the
        cached attention wherever the path uses the shared network; the first ``shown`` tiles are the view's."""
        keys = self.seg.path_keys(prompt, ad)
        message = "segmenting" if ad.path == "none" else "adapting the result"
        for n, i in enumerate(order):
            t, f = self.tiles[i], self.feature_tiles[i]
            cached = None if ad.path == "forest" or ad.model is not None else self.attend(i, keys)[2]
            with torch.inference_mode():
                probs = self.seg.tile_probs(self.arr, self.rng, t, f, keys, ad, cached)
            rows, cols = slice(t.ty, t.ty1), slice(t.tx, t.tx1)
            yield Patch(rows, cols, self.labels(probs, keys.classes, rows, cols), True)
            yield Progress(n + 1, len(order), message)
            if n + 1 == shown:
                yield Progress(0, 0, VIEW_FINAL)

    def meets(self, i: int, box) -> bool:
        t, (y0, y1, x0, x1) = self.tiles[i], box
        return t.ty < y1 and t.ty1 > y0 and t.tx < x1 and t.tx1 > x0
