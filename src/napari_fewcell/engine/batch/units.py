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

from ..core.blocks import LazyImage, blocks, label_blocks_iter, open_image
from ..core.errors import FewcellError
from ..core.files import atomic_write, check_out_dir, read_image, read_labels_meta, write_labels_tif
from ..core.geometry import Box
from ..core.image import planes_of
from ..core.instances import instance_labels
from ..core.progress import Progress

#: images with more pixels than this are labelled block by block (bounded memory) instead of whole
BIG_PIXELS = 4096 * 4096
FORMATS = ("auto", "tif", "zarr")  #: output formats; auto: zarr for a zarr input, TIFF otherwise


@dataclasses.dataclass(frozen=True)
class Output:
    """One input and where its labels go."""

    source: str
    target: str  #: the final path: <out>/<stem>.tif or <out>/<stem>.zarr
    shape: tuple[int, int] | None = None  #: a big image's (H, W); None for a small image (labelled whole)
    edge: int = 0  #: a big image's block edge (its output's chunk edge)
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

    def marker(self, block: Box) -> Path:
        return self.markers / f"{block[0]}_{block[1]}"


@dataclasses.dataclass(frozen=True)
class Unit:
    output: Output
    block: Box | None = None  #: None: the whole (small) image

    @property
    def name(self) -> str:
        name = Path(self.output.source).name
        return name if self.block is None else f"{name} block y={self.block[0]} x={self.block[1]}"


def is_big_source(path: str, big_pixels: int = BIG_PIXELS) -> bool:
    """A zarr folder, or a TIFF with more than ``big_pixels`` pixels (its header is read, not its pixels)."""
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
        return len(shape) in (2, 3) and int(np.prod(shape[:2])) > big_pixels and (len(shape) == 2 or shape[2] <= 4)
    return False


def plan(sources: Sequence[str], out: str | Path, model, fmt: str = "auto", resume: bool = False,
         overwrite: bool = False, meta: dict | None = None, big_pixels: int = BIG_PIXELS
         ) -> tuple[list[Output], list[Unit]]:
    """The outputs and the units of work for ``sources`` (paths); ``model`` (a BlockModel) gives the tile and the
    labels' type. Checks everything before any work: the folder, two inputs of one name, existing outputs
    (refused unless ``overwrite``; skipped with ``resume``)."""
    if fmt not in FORMATS:
        raise FewcellError(f"Unknown output format '{fmt}': choose one of {', '.join(FORMATS)}.")
    stems = [Path(s).stem if not Path(s).is_dir() else Path(s).name.removesuffix(".zarr") for s in sources]
    folder = check_out_dir(out, overwrite=True, stems=stems)
    outputs, units = [], []
    for src, stem in zip(sources, stems):
        big = is_big_source(src, big_pixels)
        suffix = ".zarr" if big and (fmt == "zarr" or (fmt == "auto" and Path(src).is_dir())) else ".tif"
        target = folder / f"{stem}{suffix}"
        if target.resolve() == Path(src).resolve():
            raise FewcellError(f"The labels of {src} would replace the image itself; choose another --out folder.")
        if target.exists() and not (resume or overwrite):
            raise FewcellError(f"{target} already exists; allow overwriting (--overwrite), resume an interrupted "
                               "run (--resume) or choose another folder.")
        if resume and is_complete(target, src):
            continue
        if not big:
            outputs.append(Output(str(src), str(target), meta=tuple((meta or {}).items())))
            units.append(Unit(outputs[-1]))
            continue
        image = open_image(src)
        o = Output(str(src), str(target), image.shape, image.block_edge(model.tile), str(model.label_dtype()),
                   tuple((meta or {}).items()))
        outputs.append(o)
        done = start_partial(o, resume)
        units += [Unit(o, b) for b in blocks(o.shape, o.edge) if b[:2] not in done]
    return outputs, units


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


def start_partial(o: Output, resume: bool) -> set[tuple[int, int]]:
    """Create (or, resuming, reopen) a big output's partial zarr; returns the (y, x) of its finished blocks."""
    import zarr

    stamp = {"source": o.source, "shape": list(o.shape), "edge": o.edge, "dtype": o.dtype,
             "meta": json.loads(json.dumps(dict(o.meta), default=str))}
    if resume and o.partial.is_dir() and o.markers.is_dir():
        try:
            if zarr.open_array(str(o.partial), mode="r").attrs.get("fewcell") == stamp:
                return {tuple(int(v) for v in m.name.split("_")) for m in o.markers.iterdir()}
        except Exception:  # noqa: BLE001 - a damaged partial output is started again
            pass
    shutil.rmtree(o.partial, ignore_errors=True)
    shutil.rmtree(o.markers, ignore_errors=True)
    try:
        arr = zarr.create_array(store=str(o.partial), shape=o.shape, chunks=(o.edge, o.edge), dtype=o.dtype,
                                fill_value=0, overwrite=True)
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
        if instances:
            lab = instance_labels(lab, instances)
        meta = dict(o.meta)
        if instances:
            meta.update(kind="instances", classes={})
        classes = meta.pop("classes", {})
        write_labels_tif(o.target, lab, source=o.source, classes=classes, overwrite=True, extra=meta)
        return {"target": o.target, "pixels": int(lab.size)}
    import zarr

    images = {} if images is None else images
    if o.source not in images:
        images[o.source] = open_image(o.source)
    out = zarr.open_array(str(o.partial), mode="r+")
    yield from label_blocks_iter(model, images[o.source], out, todo=[unit.block])
    o.marker(unit.block).touch()
    return {"target": o.target, "pixels": unit.block[2] * unit.block[3]}


def finish(o: Output) -> bool:
    """Move a big output into place once every block is done (streamed into a tiled TIFF for a .tif target);
    returns False (and changes nothing) while blocks are missing."""
    if not o.big:
        return Path(o.target).exists()
    done = {m.name for m in o.markers.iterdir()} if o.markers.is_dir() else set()
    if any(f"{b[0]}_{b[1]}" not in done for b in blocks(o.shape, o.edge)):
        return False
    import zarr

    arr = zarr.open_array(str(o.partial), mode="r+")
    meta = {"software": "napari-fewcell", "source": o.source, **dict(o.meta)}
    target = Path(o.target)
    if target.suffix == ".zarr":
        arr.attrs.update({k: v for k, v in meta.items()})
        arr.attrs["source"] = o.source
        if target.exists():
            shutil.rmtree(target)
        o.partial.rename(target)
    else:
        write_tiled_tif(target, arr, meta)
        shutil.rmtree(o.partial)
    shutil.rmtree(o.markers, ignore_errors=True)
    return True


def write_tiled_tif(target: Path, arr, meta: dict, tile: int = 512) -> None:
    """A zarr array → a tiled, compressed TIFF, one row of tiles in memory at a time, written atomically."""
    import tifffile

    H, W = arr.shape

    def tiles():
        for y in range(0, H, tile):
            row = arr[y : y + tile]
            for x in range(0, W, tile):
                t = np.zeros((tile, tile), arr.dtype)
                part = row[:, x : x + tile]
                t[: part.shape[0], : part.shape[1]] = part
                yield t

    meta = {"classes": {}, **meta}
    atomic_write(target, lambda tmp: tifffile.imwrite(
        tmp, tiles(), shape=(H, W), dtype=arr.dtype, tile=(tile, tile), compression="zlib",
        photometric="minisblack", description=json.dumps(meta, default=str), metadata=None, bigtiff=H * W > 2**31))
