"""Batch work cut into units that can run anywhere, in any order: one unit per small image (read, labelled and
written whole) or per block of a big one (a zarr array or a large TIFF, labelled block by block into a zarr
array). Every unit writes its own output, so no pixel travels back to whoever started the work, and nothing
half-written ever carries a final name:

* a small image's labels are written to a temporary file that is renamed ``<stem>.tif`` when complete;
* a big image's blocks go into ``.<stem>.zarr.partial`` beside the output, and each finished block leaves a
  marker in ``.<stem>.zarr.done/``; when every block is done the folder is renamed ``<stem>.zarr`` (or streamed
  tile by tile into ``<stem>.tif``).

A run that stops (killed, cancelled, a worker lost) is taken up again by planning with ``resume=True``: complete
outputs are skipped, and so are the finished blocks of a big one.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Generator, Sequence

import numpy as np

from ..core.blocks import blocks, label_blocks_iter
from ..core.errors import FewcellError
from ..core.files import atomic_write, check_out_dir, read_image, read_labels_meta, write_result_labels
from ..core.geometry import Box
from ..core.image import planes_of
from ..core.lazy import LazyImage, is_stack, open_array, open_planes
from ..core.progress import Progress

#: images with more pixels than this are labelled block by block (bounded memory) instead of whole
BIG_PIXELS = 4096 * 4096
FORMATS = ("auto", "tif", "zarr")  #: output formats; auto: zarr for a zarr input, TIFF otherwise


@dataclasses.dataclass(frozen=True)
class Output:
    """One input and where its labels go."""

    source: str
    target: str  #: the final path: <out>/<stem>.tif or <out>/<stem>.zarr
    shape: tuple[int, int] | None = None  #: a big image's (H, W) (of each plane); None for a small image
    edge: int = 0  #: a big image's block edge (its output's chunk edge)
    planes: int = 0  #: a big stack's number of planes (its output is Z×H×W); 0 for a 2D image
    dtype: str = "uint8"
    meta: tuple = ()  #: (key, value) pairs for the labels' metadata

    @property
    def big(self) -> bool:
        return self.shape is not None

    @property
    def partial(self) -> Path:
        t = Path(self.target)
        return t.with_name(f".{t.stem}.zarr.partial")

    @property
    def markers(self) -> Path:
        t = Path(self.target)
        return t.with_name(f".{t.stem}.zarr.done")

    def marker(self, block: Box, plane: int = 0) -> Path:
        return self.markers / f"{plane}_{block[0]}_{block[1]}"

    def all_units(self) -> list["Unit"]:
        """Every unit of a big output: each block of each plane."""
        return [Unit(self, b, z) for z in range(max(1, self.planes)) for b in blocks(self.shape, self.edge)]


@dataclasses.dataclass(frozen=True)
class Unit:
    output: Output
    block: Box | None = None  #: None: the whole (small) image
    plane: int = 0  #: the plane of a big stack

    @property
    def name(self) -> str:
        name = Path(self.output.source).name
        if self.block is None:
            return name
        plane = f" plane {self.plane}" if self.output.planes else ""
        return f"{name}{plane} block y={self.block[0]} x={self.block[1]}"


def is_big_source(path: str, big_pixels: int = BIG_PIXELS) -> bool:
    """A zarr folder, or a TIFF image or stack with more than ``big_pixels`` pixels in all (its header is read,
    not its pixels)."""
    p = Path(path)
    if p.is_dir():
        return True
    if p.suffix.lower() in (".tif", ".tiff") and p.is_file():
        import tifffile

        try:
            with tifffile.TiffFile(p) as tf:
                shape = tf.series[0].shape
        except Exception:  # noqa: BLE001 - an unreadable file is reported when it is read
            return False
        colour = shape[-1] in (3, 4) and len(shape) in (3, 4)
        return int(np.prod(shape[:-1] if colour else shape)) > big_pixels
    return False


def plan(sources: Sequence[str], out: str | Path, model, fmt: str = "auto", resume: bool = False,
         overwrite: bool = False, meta: dict | None = None, big_pixels: int | None = None
         ) -> tuple[list[Output], list[Unit]]:
    """The outputs and the units of work for ``sources`` (paths); ``model`` (a BlockModel) gives the tile and the
    labels' type. Checks everything before any work (:func:`targets`). A big stack is done plane by plane, block
    by block."""
    outputs, units = [], []
    for src, target, big in targets(sources, out, fmt, resume, overwrite, big_pixels):
        if resume and is_complete(target, src):
            continue
        if not big:
            outputs.append(Output(str(src), str(target), meta=tuple((meta or {}).items())))
            units.append(Unit(outputs[-1]))
            continue
        data = open_array(src)
        planes = open_planes(data, Path(src).name)
        o = Output(str(src), str(target), shape=planes[0].shape, edge=planes[0].block_edge(model.tile),
                   planes=len(planes) if is_stack(data.shape) else 0, dtype=str(model.label_dtype()),
                   meta=tuple((meta or {}).items()))
        outputs.append(o)
        done = start_partial(o, resume)
        units += [u for u in o.all_units() if o.marker(u.block, u.plane).name not in done]
    return outputs, units


def targets(sources: Sequence[str], out: str | Path, fmt: str = "auto", resume: bool = False,
            overwrite: bool = False, big_pixels: int | None = None, create: bool = True
            ) -> list[tuple[str, Path, bool]]:
    """(source, output path, big) of every source, checked: the folder, two inputs of one name, an output that
    would replace its input, existing outputs (refused unless ``overwrite``; kept for ``resume``). ``create``
    False creates nothing (the check a command makes before any work)."""
    if fmt not in FORMATS:
        raise FewcellError(f"Unknown output format '{fmt}': choose one of {', '.join(FORMATS)}.")
    stems = [Path(s).stem if not Path(s).is_dir() else Path(s).name.removesuffix(".zarr") for s in sources]
    folder = check_out_dir(out, overwrite=True, stems=stems, create=create)
    out_list = []
    for src, stem in zip(sources, stems):
        big = is_big_source(src, BIG_PIXELS if big_pixels is None else big_pixels)
        suffix = ".zarr" if big and (fmt == "zarr" or (fmt == "auto" and Path(src).is_dir())) else ".tif"
        target = folder / f"{stem}{suffix}"
        if target.resolve() == Path(src).resolve():
            raise FewcellError(f"The labels of {src} would replace the image itself; choose another --out folder.")
        if target.exists() and not (resume or overwrite):
            raise FewcellError(f"{target} already exists; allow overwriting (--overwrite), resume an interrupted "
                               "run (--resume) or choose another folder.")
        out_list.append((src, target, big))
    return out_list


def is_complete(target: Path, source: str) -> bool:
    """An output under its final name is complete (it was renamed into place whole) if it is ours and of
    ``source``."""
    if not target.exists():
        return False
    if target.suffix == ".zarr":
        import zarr

        try:
            return zarr.open_array(str(target), mode="r").attrs.get("source") == str(source)
        except Exception:  # noqa: BLE001
            return False
    try:
        return read_labels_meta(target).get("source") == str(source)
    except Exception:  # noqa: BLE001
        return False


def start_partial(o: Output, resume: bool) -> set[str]:
    """Create (or, resuming, reopen) a big output's partial zarr; returns the marker names of its finished
    blocks."""
    import zarr

    stamp = {"source": o.source, "shape": list(o.shape), "planes": o.planes, "edge": o.edge, "dtype": o.dtype,
             "meta": json.loads(json.dumps(dict(o.meta), default=str))}
    if resume and o.partial.is_dir() and o.markers.is_dir():
        try:
            if zarr.open_array(str(o.partial), mode="r").attrs.get("fewcell") == stamp:
                return {m.name for m in o.markers.iterdir()}
        except Exception:  # noqa: BLE001 - a damaged partial output is started again
            pass
    shutil.rmtree(o.partial, ignore_errors=True)
    shutil.rmtree(o.markers, ignore_errors=True)
    try:
        shape, chunks = ((o.planes, *o.shape), (1, o.edge, o.edge)) if o.planes else (o.shape, (o.edge, o.edge))
        arr = zarr.create_array(store=str(o.partial), shape=shape, chunks=chunks, dtype=o.dtype, fill_value=0,
                                overwrite=True)
        arr.attrs["fewcell"] = stamp
        o.markers.mkdir()
    except OSError:
        raise FewcellError(f"Cannot write into {o.partial.parent}; choose a folder you have write permission for.") \
            from None
    return set()


def run_unit(model, unit: Unit, images: dict | None = None, instances: str | None = None
             ) -> Generator[Progress, None, dict]:
    """Do one unit with ``model`` (a BlockModel): label a small image and write it, or label one block of a big
    image into its partial zarr and leave its marker. ``images`` caches opened big images (one per source).
    Returns a small record (never pixels)."""
    o = unit.output
    if unit.block is None:
        planes, stack = planes_of(read_image(o.source), Path(o.source).name)
        labels = []
        for plane in planes:
            image = LazyImage(plane, Path(o.source).name)
            out = np.zeros(image.shape, model.label_dtype())
            labels.append((yield from label_blocks_iter(model, image, out)))
        lab = np.stack(labels) if stack else labels[0]
        meta = dict(o.meta)
        classes, kind = meta.pop("classes", {}), meta.pop("kind", "labels")
        write_result_labels(o.target, lab, o.source, classes, instances, kind, meta)
        return {"target": o.target, "pixels": int(lab.size)}
    import zarr

    images = {} if images is None else images
    if o.source not in images:
        images[o.source] = open_planes(o.source)
    out = zarr.open_array(str(o.partial), mode="r+")
    yield from label_blocks_iter(model, images[o.source][unit.plane], PlaneView(out, unit.plane) if o.planes else out,
                                 todo=[unit.block])
    o.marker(unit.block, unit.plane).touch()
    return {"target": o.target, "pixels": unit.block[2] * unit.block[3]}


class PlaneView:
    """One plane of a Z×H×W array, read and written as a 2D array (``plane[rows] ``, ``plane[rows, cols] = v``)."""

    def __init__(self, arr, z: int):
        self.arr, self.z = arr, z

    def __getitem__(self, key):
        return self.arr[(self.z, *(key if isinstance(key, tuple) else (key,)))]

    def __setitem__(self, key, value) -> None:
        self.arr[(self.z, *key)] = value


def finish(o: Output) -> bool:
    """Move a big output into place once every block is done (streamed into a tiled TIFF for a .tif target);
    returns False (and changes nothing) while blocks are missing."""
    if not o.big:
        return Path(o.target).exists()
    done = {m.name for m in o.markers.iterdir()} if o.markers.is_dir() else set()
    if any(o.marker(u.block, u.plane).name not in done for u in o.all_units()):
        return False
    import zarr

    arr = zarr.open_array(str(o.partial), mode="r+")
    meta = {"software": "napari-fewcell", "source": o.source, **dict(o.meta)}
    target = Path(o.target)
    if target.suffix == ".zarr":
        arr.attrs.update(meta)
        if target.exists():
            shutil.rmtree(target)
        o.partial.rename(target)
    else:
        write_tiled_tif(target, arr, meta)
        shutil.rmtree(o.partial)
    shutil.rmtree(o.markers, ignore_errors=True)
    return True


def write_tiled_tif(target: Path, arr, meta: dict, tile: int = 512) -> None:
    """A zarr array (H×W, or Z×H×W: one page a plane) → a tiled, compressed TIFF, one row of tiles in memory at a
    time, written atomically."""
    import tifffile

    H, W = arr.shape[-2:]
    planes = [arr] if arr.ndim == 2 else [PlaneView(arr, z) for z in range(arr.shape[0])]

    def tiles():
        for plane in planes:
            for y in range(0, H, tile):
                row = plane[y : y + tile]
                for x in range(0, W, tile):
                    t = np.zeros((tile, tile), arr.dtype)
                    part = row[:, x : x + tile]
                    t[: part.shape[0], : part.shape[1]] = part
                    yield t

    meta = {"classes": {}, **meta}
    atomic_write(target, lambda tmp: tifffile.imwrite(
        tmp, tiles(), shape=arr.shape, dtype=arr.dtype, tile=(tile, tile), compression="zlib",
        photometric="minisblack", description=json.dumps(meta, default=str), metadata=None,
        bigtiff=int(np.prod(arr.shape)) > 2**31))
