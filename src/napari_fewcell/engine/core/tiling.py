"""One tile-with-margin iterator for every bounded-memory pass over a large image.

A tile is cut with ``margin`` pixels of context on every side (clipped to the image), computed,
and only its inner part is kept: the seams disappear and memory depends on the tile, not the image.
"""
from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    ty: int  #: the tile's rows ty:ty1 and columns tx:tx1, in image coordinates
    ty1: int
    tx: int
    tx1: int
    y0: int  #: the region read, with its context: rows y0:y1, columns x0:x1
    y1: int
    x0: int
    x1: int

    @property
    def tile(self) -> tuple[slice, slice]:
        """The tile, in image coordinates."""
        return slice(self.ty, self.ty1), slice(self.tx, self.tx1)

    @property
    def region(self) -> tuple[slice, slice]:
        """The region read (tile + context), in image coordinates."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def inner(self) -> tuple[slice, slice]:
        """The tile, in the coordinates of the region read."""
        return slice(self.ty - self.y0, self.ty1 - self.y0), slice(self.tx - self.x0, self.tx1 - self.x0)

    def widen(self, margin: int, shape: tuple[int, int]) -> "Window":
        """The same tile with ``margin`` pixels of context (clipped to an image of ``shape``)."""
        H, W = shape[:2]
        return Window(self.ty, self.ty1, self.tx, self.tx1, max(0, self.ty - margin), min(H, self.ty1 + margin),
                      max(0, self.tx - margin), min(W, self.tx1 + margin))


def windows(shape: tuple[int, int], tile: int, margin: int,
            block: tuple[int, int, int, int] | None = None) -> list[Window]:
    """Tiles of ``tile``² (smaller at the bottom and right edges) covering ``shape``, row by row; with ``block``
    = (y, x, h, w), only the tiles from its corner to its end (the corner on the tile grid: the same tiles)."""
    y, x, h, w = block or (0, 0, *shape[:2])
    out = []
    for ty in range(y, y + h, tile):
        for tx in range(x, x + w, tile):
            ty1, tx1 = min(shape[0], ty + tile), min(shape[1], tx + tile)
            out.append(Window(ty, ty1, tx, tx1, ty, ty1, tx, tx1).widen(margin, shape))
    return out


def n_windows(shape: tuple[int, int], tile: int) -> int:
    return -(-shape[0] // tile) * -(-shape[1] // tile)

