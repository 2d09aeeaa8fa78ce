"""Big images read region by region: a 2D image from numpy, dask, zarr or a TIFF file (:class:`LazyImage`, never
read whole unless it is small; :class:`LuminanceImage`: one seen as gray), and opening a path or an array as one
(:func:`open_image`, :func:`open_planes`: a stack's planes as lazy views)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import FewcellError
from .geometry import Box
from .image import as_image2d, is_colour_sample, luminance, range_of_sample, sample_step
from .tiling import Window

#: context read around a block with it: more than any model's tile margin (32, 72, 96)
CONTEXT = 128
#: the edge of a block when the input gives no hint (in-memory arrays), and the range of block edges
BLOCK, MIN_BLOCK, MAX_BLOCK = 2048, 512, 4096
#: chunks of fewer than MIN_CHUNK² pixels make reading a tile open too many chunks
MIN_CHUNK = 16
#: a chunk larger than this is never read a tile at a time (each read would decompress all of it) ...
MAX_CHUNK_BYTES = 512 << 20
#: ... unless the whole image is this small: then it is simply read into memory
SMALL_IMAGE_BYTES = 1 << 30


class LazyImage:
    """A 2D gray or colour image (H, W[, C]) read region by region, never whole unless it is small.

    ``data`` is a numpy array, a dask array, a zarr array or anything with ``shape``, ``dtype`` and numpy
    slicing (tifffile's zarr store of a TIFF, a memory map). Regions come back as (h, w, C) numpy arrays, as
    :func:`~.image.as_image2d` returns them.
    """

    def __init__(self, data, name: str = "image"):
        self.name = name
        shape, dtype = tuple(getattr(data, "shape", ())), np.dtype(getattr(data, "dtype", np.float32))
        # the same checks as for an in-memory image, on an 8×8 corner of it when it has the shape of an image, else
        # on a zero-copy stand-in of its shape (no pixel is read, nothing the size of the data is allocated)
        image_like = len(shape) in (2, 3) and min(shape[:2]) >= 8
        as_image2d(np.broadcast_to(np.zeros((), dtype), (8, 8, *shape[2:]) if image_like else shape), name)
        self.shape: tuple[int, int] = shape[:2]
        self.dtype = dtype
        self.channels = 1 if len(shape) == 2 else min(shape[2], 3)
        self.chunks = chunk_shape(data)
        self.data = settle_chunks(data, self.chunks, name)
        self._range = self._sample = None

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """The region ``[rows, cols]`` as an (h, w, C) numpy array (the checks of ``as_image2d``)."""
        sel = (rows, cols) if len(self.data.shape) == 2 else (rows, cols, slice(0, self.channels))
        region = self.data[sel]
        if hasattr(region, "compute"):  # dask
            region = region.compute()
        return as_image2d(np.asarray(region), self.name)

    def window(self, win: Window) -> np.ndarray:
        return self.read(*win.region)

    def around(self, block: Box, margin: int = CONTEXT) -> "LazyImage":
        """This image with ``block`` and ``margin`` pixels around it read once, so that its tiles are cut from
        memory instead of each decompressing the chunks they touch."""
        y, x, h, w = block
        y0, x0 = max(0, y - margin), max(0, x - margin)
        y1, x1 = min(self.shape[0], y + h + margin), min(self.shape[1], x + w + margin)
        return RegionCache(self, (y0, y1, x0, x1), self.read(slice(y0, y1), slice(x0, x1)))

    def sample(self) -> np.ndarray:
        """The (N, C) strided pixel sample of the whole image that :func:`~.image.intensity_range` reads, read
        chunk by chunk (once: it is kept)."""
        if self._sample is None:
            step = sample_step(self.shape)
            sel = (slice(None, None, step), slice(None, None, step))
            sample = self.data[sel if len(self.data.shape) == 2 else (*sel, slice(0, self.channels))]
            sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample)
            self._sample = sample.reshape(-1, 1 if sample.ndim == 2 else sample.shape[-1])
        return self._sample

    def intensity_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The same range as :func:`~.image.intensity_range` of the whole image, from the same strided sample."""
        if self._range is None:
            self._range = range_of_sample(self.sample(), self.channels)
        return self._range

    def is_colour(self) -> bool:
        """Whether the image is colour (three channels, not all equal on the sample): :func:`~.image.is_colour`."""
        return is_colour_sample(self.sample())

    def block_edge(self, tile: int) -> int:
        """The block edge for a model with tiles of ``tile``: the input's chunk edge rounded to whole tiles
        (within 512–4096 px), so that output chunks can follow the input's; 2048 for in-memory arrays."""
        hint = max(self.chunks) if self.chunks else BLOCK
        edge = max(MIN_BLOCK, min(MAX_BLOCK, hint))
        return max(tile, int(round(edge / tile)) * tile)


class RegionCache(LazyImage):
    """A LazyImage whose reads inside one region are served from memory (``LazyImage.around``)."""

    def __init__(self, base: LazyImage, bounds: tuple[int, int, int, int], region: np.ndarray):
        self.__dict__.update(base.__dict__)
        self.base, self.bounds, self.region = base, bounds, region

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        y0, y1, x0, x1 = self.bounds
        if y0 <= rows.start and rows.stop <= y1 and x0 <= cols.start and cols.stop <= x1:
            return self.region[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0]
        return self.base.read(rows, cols)

    def intensity_range(self):
        return self.base.intensity_range()


class LuminanceImage(LazyImage):
    """A LazyImage seen as its luminance: every region read is (h, w, 1) gray (a colour prompt with a gray image,
    or the reverse, is segmented in gray: benchmarks/results/colour.md)."""

    def __init__(self, base: LazyImage):
        self.__dict__.update(base.__dict__)
        self.base, self.channels, self._range = base, 1, None

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        return luminance(self.base.read(rows, cols))

    def sample(self) -> np.ndarray:
        return luminance(self.base.sample())


def chunk_shape(data) -> tuple[int, int] | None:
    """(rows, cols) of the array's chunks (the first chunk of a dask array), None for in-memory arrays."""
    chunks = getattr(data, "chunks", None)
    if chunks is None or isinstance(data, np.ndarray):
        return None
    first = [c[0] if isinstance(c, tuple) else c for c in chunks[:2]]
    return int(first[0]), int(first[1])


def settle_chunks(data, chunks: tuple[int, int] | None, name: str):
    """Make an array's chunks workable: a dask array with tiny chunks is rechunked; a stored array with tiny
    chunks, or with huge chunks when the image is large, is refused with a sentence; a small image with huge
    chunks is read into memory once."""
    if chunks is None:
        return data
    shape = data.shape
    itemsize = np.dtype(data.dtype).itemsize * (shape[2] if len(shape) == 3 else 1)
    chunk_bytes = chunks[0] * chunks[1] * itemsize
    image_bytes = shape[0] * shape[1] * itemsize
    is_dask = hasattr(data, "dask")
    if chunks[0] * chunks[1] < MIN_CHUNK**2 and chunks[0] * chunks[1] < shape[0] * shape[1]:
        if is_dask:
            return data.rechunk({0: BLOCK, 1: BLOCK})
        raise FewcellError(
            f"The {name} is stored in chunks of {chunks[0]}×{chunks[1]} pixels, so reading one tile would open "
            f"thousands of chunks; store it again with chunks of 512–4096 pixels (e.g. dask.array.from_zarr(...)"
            ".rechunk(2048).to_zarr(...))."
        )
    if chunk_bytes > MAX_CHUNK_BYTES:
        if image_bytes <= SMALL_IMAGE_BYTES:
            return np.asarray(data[...].compute() if is_dask else data[...])
        raise FewcellError(
            f"The {name} is stored in chunks of {chunks[0]}×{chunks[1]} pixels ({chunk_bytes / 2**20:.0f} MiB "
            "each), too large to read a tile at a time; store it again with chunks of 512–4096 pixels."
        )
    return data


def open_image(source, name: str | None = None) -> LazyImage:
    """A LazyImage of a numpy/dask/zarr array, or of a path: a zarr array, an OME-Zarr (level 0 of its
    multiscale), a TIFF (read through tifffile's zarr store: tiles and strips on demand) or any other image
    file (read whole)."""
    if not isinstance(source, (str, Path)):
        return LazyImage(source, name or "image")
    return LazyImage(open_array(source), name or Path(source).name)


def open_planes(source, name: str | None = None) -> list[LazyImage]:
    """The 2D planes of an image or a stack (Z×H×W, Z×H×W×3), each a LazyImage read region by region: a stack on
    disk is never read whole (its planes are lazy views of the array)."""
    data = open_array(source) if isinstance(source, (str, Path)) else source
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "image")
    shape = tuple(data.shape)
    if not is_stack(shape):
        return [LazyImage(data, name)]
    if not (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (3, 4))):
        raise FewcellError(f"The {name} has shape {shape}; expected a 2D image (H×W, or H×W×3 colour) or a stack of "
                           "them (Z×H×W).")
    if not hasattr(data, "dask"):
        import dask.array as da

        chunks = getattr(data, "chunks", None)
        data = da.from_array(data, chunks=chunks if chunks and not isinstance(data, np.ndarray) else "auto")
    return [LazyImage(data[z], f"{name} plane {z}") for z in range(shape[0])]


def is_stack(shape) -> bool:
    """Whether an array of ``shape`` is a stack of planes rather than one 2D image (gray, or H×W×1|3|4)."""
    return not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)))


def open_array(path) -> object:
    """The pixels of an image file or zarr path as an array read on demand (whole only for non-TIFF files)."""
    path = Path(path)
    if path.is_dir():
        return open_zarr(path)
    if not path.is_file():
        raise FewcellError(f"The image {path} does not exist.")
    if path.suffix.lower() in (".tif", ".tiff"):
        return open_tiff(path)
    from .files import read_image

    return read_image(path)


SMALL_TIFF = 64 << 20  #: a TIFF of at most this many bytes (its first series, level 0) is read whole, without zarr


def open_tiff(path: Path):
    """A TIFF's pixels (level 0 of its first series): read whole when small (:data:`SMALL_TIFF`; zarr's import alone
    costs a fresh command 0.1–0.2 s), else through tifffile's zarr store, tiles and strips on demand."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            if int(np.prod(series.shape)) * series.dtype.itemsize <= SMALL_TIFF:
                return series.asarray()
        import zarr

        arr = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        if not hasattr(arr, "shape"):  # a multi-resolution TIFF: a group of levels
            arr = arr[sorted(arr.array_keys())[0]]
    except Exception:  # noqa: BLE001
        raise FewcellError(f"Could not read the image {path}: it is not a TIFF file this tool can read.") from None
    return arr


def open_zarr(path: Path):
    """The array at ``path``: a zarr array, or level 0 of an OME-Zarr multiscale group; a sentence otherwise."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001
        raise FewcellError(f"{path} is a folder but not a zarr array; give a zarr array or an image file.") from None
    if hasattr(node, "shape"):
        return node
    multiscales = node.attrs.get("multiscales") or node.attrs.get("ome", {}).get("multiscales")
    try:
        return node[multiscales[0]["datasets"][0]["path"]]
    except (TypeError, KeyError, IndexError):
        arrays = sorted(node.array_keys())
        hint = f" (it holds {', '.join(arrays[:5])}: give {path / arrays[0]})" if arrays else ""
        raise FewcellError(f"{path} is a zarr group, not an image array{hint}.") from None
