"""Big and lazy image layers (dask, zarr, multiscale): segmented block by block into a new zarr array on disk,
shown as a new Labels layer that reads that array lazily, so the image is never held in memory whole.

Shared by the dock widgets (Segment, Apply network, Apply perceptron). Everything but :class:`OutputFolder` is
Qt-free. A :class:`LazyTarget` is made on the GUI thread (it only looks at shapes); the image is opened
(:class:`~..engine.core.blocks.LazyImage`: chunk checks, one sentence on bad chunks) and the output array made
on the job's thread.
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import numpy as np
from magicgui.widgets import FileEdit
from napari.layers import Image

from ..engine.core.errors import FewcellError
from ..engine.core.lazy import LazyImage
from ..engine.core.progress import Progress
from .geometry import layer_data, plane_at, shape2d
from .layers import RESULT_KEY

#: a numpy image layer is taken block by block above this many pixels (per plane) or bytes
LAZY_PIXELS, LAZY_BYTES = 4096 * 4096, 256 << 20
#: where the labels of big images go unless the user picks a folder
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "napari-fewcell"
ZARR_KEY = "fewcell_zarr"  # metadata of a result layer: the path of the zarr array it reads


def is_big(data) -> bool:
    shape = tuple(data.shape)
    pixels = int(np.prod(shape[-2:])) if len(shape) >= 2 else 0
    return pixels > LAZY_PIXELS or int(np.prod(shape)) * np.dtype(data.dtype).itemsize > LAZY_BYTES


def is_lazy(layer) -> bool:
    """A multiscale layer, a layer whose data is not a numpy array (dask, zarr, …), or a big one."""
    data = layer_data(layer)
    return bool(getattr(layer, "multiscale", False)) or not isinstance(data, np.ndarray) or is_big(data)


def new_output_path(name: str, folder: str | Path | None = None) -> Path:
    """A zarr path that does not exist yet: ``<folder>/<layer name>-<timestamp>.zarr`` (the folder defaults to
    OUTPUT_ROOT); results always go to new files."""
    root = Path(folder).expanduser() if folder else OUTPUT_ROOT
    if folder and not root.is_dir():
        raise FewcellError(f"The output folder {root} does not exist; choose an existing folder for big images.")
    stem = f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'image'}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = root / f"{stem}.zarr", 1
    while path.exists():
        n += 1
        path = root / f"{stem}-{n}.zarr"
    return path


class LazyTarget:
    """An image layer to be segmented block by block: its level-0 array, its geometry and the new zarr path."""

    def __init__(self, layer, folder: str | Path | None = None):
        self.name, self.data = layer.name, layer_data(layer)
        levels = list(layer.data) if getattr(layer, "multiscale", False) else [self.data]
        self.level_shapes = [tuple(level.shape[:2]) for level in levels]
        self.scale, self.translate = layer.scale[-2:], layer.translate[-2:]
        self.folder, self.path = folder, new_output_path(layer.name, folder)

    def open(self) -> LazyImage:
        """The image, read region by region (a FewcellError with one sentence on unworkable chunks)."""
        return LazyImage(self.data, f"image '{self.name}'")

    def create(self, dtype, edge: int):
        """The new, empty (H, W) zarr array the labels are written into, in chunks of whole blocks."""
        import zarr

        if self.path.exists():  # made meanwhile by another job: results never overwrite
            self.path = new_output_path(self.name, self.folder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        H, W = self.level_shapes[0]
        return zarr.create_array(store=str(self.path), shape=(H, W), chunks=(min(edge, H), min(edge, W)),
                                 dtype=np.dtype(dtype), fill_value=0)

    def labels_data(self, out):
        """The Labels layer's data: the zarr array, or for a multiscale image one lazy strided view of it per level."""
        if len(self.level_shapes) == 1:
            return out
        import dask.array as da

        full, (H, W) = da.from_zarr(out), self.level_shapes[0]
        return [full[:: max(1, round(H / h)), :: max(1, round(W / w))] for h, w in self.level_shapes]

    def add_labels(self, viewer, out, name: str, extra: dict | None = None):
        """A new Labels layer reading ``out`` lazily, placed like the image; the zarr path (and ``extra``) is in
        its metadata."""
        data, meta = self.labels_data(out), {RESULT_KEY: True, ZARR_KEY: str(self.path), **(extra or {})}
        return viewer.add_labels(data, name=name, scale=self.scale, translate=self.translate,
                                 multiscale=isinstance(data, list), metadata=meta)


def lazy_target(layer, folder: str | Path | None = None) -> LazyTarget | None:
    """A LazyTarget for a lazy or big 2D (or RGB) image layer; None for an in-memory image or a small stack (the
    usual path); a sentence for a big lazy stack."""
    if not is_lazy(layer):
        return None
    if layer.ndim == 2:
        return LazyTarget(layer, folder)
    data = layer_data(layer)
    if isinstance(data, np.ndarray) or not is_big(data):
        return None  # in memory already, or small enough to read: planes as before
    raise FewcellError(f"The image '{layer.name}' is a big lazy stack, which is not segmented block by block; "
                       "apply to the current plane only, or open a single 2D plane of it.")


def lazy_targets(layers, folder: str | Path | None = None) -> dict[str, LazyTarget]:
    """The LazyTarget of every lazy 2D layer among ``layers``, by layer name."""
    found = ((layer.name, lazy_target(layer, folder)) for layer in layers)
    return {name: target for name, target in found if target is not None}


# ---- the engine generators the jobs run
def predict_lazy(model, target: LazyTarget):
    """Apply a saved model (a SegModel or a Perceptron) block by block; returns the zarr array of labels."""
    image = target.open()
    out = target.create(model.label_dtype(), image.block_edge(model.tile))
    return (yield from model.predict_lazy_iter(image, out))


def segment_lazy(seg, prompt, target: LazyTarget, image: LazyImage | None = None):
    """Adapt the segmenter to ``prompt`` and segment the target block by block (``image``: the target already
    opened, with its sample read); returns the zarr array."""
    image = target.open() if image is None else image
    yield from seg.adapt_iter(prompt)
    blocks = seg.blocks_for(prompt)
    out = target.create(blocks.label_dtype(), image.block_edge(blocks.tile))
    return (yield from seg.segment_lazy_iter(image, prompt, out))


def prompt_labels(labels_layer, image_layer, box, point) -> np.ndarray:
    """The prompt labels: only the box of them when they lie over a lazy 2D image, else the plane shown."""
    data = layer_data(labels_layer)
    y, x, h, w = (int(v) for v in box)
    over = labels_layer.ndim == 2 and tuple(data.shape) == shape2d(image_layer)
    if over and image_layer.ndim == 2 and is_lazy(image_layer) and y >= 0 and x >= 0:
        return np.array(data[y : y + h, x : x + w])
    return np.array(plane_at(labels_layer, point)[0])


def named(name: str):
    """The Progress of a job on one image, with the image's name (for ``relay``)."""
    return lambda p: Progress(p.done, p.total, f"{p.message} {name}")


def written_text(target: LazyTarget) -> str:
    return f"labels written to {target.path}"


# ---- widget parts
class CancelNote:
    """Wraps a widget's ``collect()`` so that a cancelled job that writes big images' labels says where the
    partly written arrays stay (job["lazy"]: the LazyTargets of the job)."""

    def __init__(self, jobs):
        self.jobs, self.base = jobs, jobs.cancelled_text

    def __call__(self, collect):
        def wrapped() -> dict:
            job = collect()
            paths = [str(t.path) for t in job.get("lazy", ())]
            self.jobs.cancelled_text = self.base if not paths else (
                f"{self.base} Partly written labels may remain in {', '.join(paths)}; delete them if not needed.")
            return job

        return wrapped


class OutputFolder(FileEdit):
    """The "Big images: output folder" field, a magicgui folder field (empty: a new folder under the system's
    temporary folder)."""

    def __init__(self):
        super().__init__(mode="d", nullable=True, name="big_folder", tooltip=(
            "Where the labels of big or lazy (dask, zarr, multiscale) images are written, as new zarr arrays; the "
            "image is read block by block, never whole."))
        self.line_edit.native.setPlaceholderText(f"{OUTPUT_ROOT} (temporary)")
        self.widget = self.native

    def folder(self) -> str | None:
        text = self.line_edit.value.strip()
        return text or None

    def show_for(self, form, layer) -> None:
        """Show the field (and its label in ``form``) only while ``layer`` is a big or lazy image: the only images
        whose labels go to that folder."""
        self.show(form, layer is not None and is_lazy(layer))

    def show_for_any(self, form, layers) -> None:
        """Show the field only while one of the Image ``layers`` (those a widget may apply to) is big or lazy."""
        self.show(form, any(isinstance(layer, Image) and is_lazy(layer) for layer in layers))

    def show(self, form, visible: bool) -> None:
        self.widget.setVisible(visible)
        label = form.labelForField(self.widget)
        if label is not None:
            label.setVisible(visible)
