"""Big images, block by block: the grid of blocks a large image (:class:`~.lazy.LazyImage`) is cut into, and the
one driver that fills an output array (numpy or zarr) block by block through a model's :class:`BlockModel` methods.

A block is a square of whole tiles (a multiple of the model's tile edge, aligned on the image's origin), so
the tiles inside the blocks are exactly the tiles of the in-memory path and the result is the same, pixel for
pixel; only one block's region (with its context margin) is ever in memory.
"""
from __future__ import annotations

from typing import Generator, Protocol, Sequence

import numpy as np

from .errors import FewcellError
from .geometry import Box
from .image import normalize
from .lazy import LazyImage
from .progress import Progress, relay
from .tiling import Window, windows


def blocks(shape: tuple[int, int], edge: int) -> list[Box]:
    """(y, x, h, w) blocks of ``edge``² (smaller at the bottom and right) covering ``shape``, row by row."""
    H, W = shape
    return [(y, x, min(edge, H - y), min(edge, W - x)) for y in range(0, H, edge) for x in range(0, W, edge)]


def block_windows(block: Box, shape: tuple[int, int], tile: int, margin: int) -> list[Window]:
    """The image's tiles (``windows(shape, tile, margin)``) that lie in ``block``; the block's edge is a
    multiple of ``tile`` and its corner on the tile grid, so these are exactly the in-memory path's tiles."""
    if block[0] % tile or block[1] % tile:
        raise ValueError(f"block {block} is not on the grid of {tile}-pixel tiles")
    return windows(shape, tile, margin, block)


def local(win: Window, outer: Window) -> Window:
    """``win`` in the coordinates of ``outer``'s region (``win``'s region must lie inside it)."""
    dy, dx = outer.y0, outer.x0
    return Window(win.ty - dy, win.ty1 - dy, win.tx - dx, win.tx1 - dx, win.y0 - dy, win.y1 - dy,
                  win.x0 - dx, win.x1 - dx)


class BlockModel(Protocol):
    """What a model offers to be applied block by block (the prompt segmenter, a stage-2 network, a perceptron).

    ``plan`` computes once per image what every block needs (the intensity range, the prompt's keys, ...);
    ``block_iter`` yields one Progress per tile and returns the labels of one block.
    """

    tile: int
    verb: str  #: what the progress bar says ("segmenting", "predicting")

    def label_dtype(self) -> np.dtype: ...

    def plan(self, image: LazyImage): ...

    def block_iter(self, image: LazyImage, plan, block: Box) -> Generator[Progress, None, np.ndarray]: ...


def label_dtype_for(classes) -> np.dtype:
    """The labels' type for these class values: uint8 up to 255, uint16 up to 65,535, else uint32 (a class value is
    never wrapped around)."""
    top = int(np.max(classes))
    return np.dtype(np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32)


class TiledModel:
    """A BlockModel whose labels come tile by tile from ``tile_labels(x, win)``: ``x`` is the normalised (3, h, w)
    region of tile ``win`` with ``margin`` pixels of context; it returns the tile's labels (a stage-2 network, a
    perceptron: subclasses set ``tile``, ``margin``, ``classes`` and ``tile_labels``)."""

    tile: int
    margin: int
    classes: np.ndarray
    verb = "predicting"

    def label_dtype(self) -> np.dtype:
        return label_dtype_for(self.classes)

    def plan(self, image: LazyImage):
        return image.intensity_range()

    def tile_labels(self, x: np.ndarray, win: Window) -> np.ndarray:
        raise NotImplementedError

    def block_iter(self, image: LazyImage, rng, block: Box) -> Generator[Progress, None, np.ndarray]:
        y, x, h, w = block
        out = np.zeros((h, w), self.label_dtype())
        tiles = block_windows(block, image.shape, self.tile, self.margin)
        for i, win in enumerate(tiles):
            out[win.ty - y : win.ty1 - y, win.tx - x : win.tx1 - x] = self.tile_labels(
                normalize(image.window(win), rng), win)
            yield Progress(i + 1, len(tiles), self.verb)
        return out


def label_blocks_iter(model: BlockModel, image: LazyImage, out, todo: Sequence[Box] | None = None,
                      on_block=None, message: str | None = None) -> Generator[Progress, None, object]:
    """Fill ``out`` (numpy or zarr, the image's height and width) block by block with ``model``'s labels; yields
    one Progress per tile; ``todo`` limits the work to some blocks; ``on_block(block)`` is called after each
    block is written (e.g. to record it as done). Returns ``out``."""
    message = message or getattr(model, "verb", "labelling")
    for o in out if isinstance(out, tuple) else (out,):  # an array (a writer of its own, e.g. a plane view: as is)
        if hasattr(o, "shape") and tuple(o.shape[:2]) != tuple(image.shape) or not hasattr(o, "__setitem__"):
            raise FewcellError(f"The output array must be {image.shape[0]}×{image.shape[1]} like the image, not "
                               f"{'×'.join(map(str, getattr(o, 'shape', ()))) or type(o).__name__}.")
    if not isinstance(out, tuple) and hasattr(model, "label_dtype") and hasattr(out, "dtype") and \
            np.dtype(out.dtype).kind in "ui" and \
            np.iinfo(out.dtype).max < np.iinfo(model.label_dtype()).max:
        raise FewcellError(f"The output array's type {out.dtype} cannot hold every class value; make it "
                           f"{model.label_dtype()}.")
    edge = image.block_edge(model.tile)
    todo = blocks(image.shape, edge) if todo is None else list(todo)
    plan = model.plan(image)
    n_tiles = [len(block_windows(b, image.shape, model.tile, 0)) for b in todo]
    total, done = sum(n_tiles), 0
    yield Progress(0, total, message)
    for block, n in zip(todo, n_tiles):
        labels = yield from relay(model.block_iter(image.around(block), plan, block),
                                  lambda p: Progress(done + min(p.done, n), total, message))
        y, x, h, w = block
        for o, lab in zip(out, labels) if isinstance(out, tuple) else [(out, labels)]:
            o[y : y + h, x : x + w] = lab
        done += n
        if on_block is not None:
            on_block(block)
    return out
