"""Segment / Apply on big or lazy layers (dask, zarr, multiscale), driven like a user would: the image is read
block by block (never whole), the labels go to a new zarr array and come back as a lazy Labels layer, equal to
what the same widget gives for the same image in memory."""
from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import zarr
from qtpy.QtCore import Qt

from napari_fewcell._qt import lazy
from napari_fewcell._qt.partial_widget import PartialLabelsWidget
from napari_fewcell._qt.prompt_widget import BOX_LAYER, PromptSegmentationWidget
from napari_fewcell._qt.support_widget import RESULT_SUFFIX, SupportWidget
from napari_fewcell.engine.core import image
from napari_fewcell.engine.core import lazy as core_lazy
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.nets.unet import NetConfig, SegNet
from napari_fewcell.engine.partial import SegModel

from .conftest import blobs, click_and_wait

pytestmark = pytest.mark.usefixtures("one_thread")
LEFT = Qt.MouseButton.LeftButton
H, W = 600, 700
BOX = (200, 300, 64, 64)  # (y, x, h, w) of the prompt box


class Spy:
    """A chunked array-like (lazy by type) that records every read made off the GUI thread (napari's own drawing
    reads on the GUI thread are not the plugin's) and every conversion to numpy."""

    def __init__(self, arr, chunks=(256, 256)):
        self.arr, self.chunks, self.shape, self.dtype, self.ndim = arr, chunks, arr.shape, arr.dtype, arr.ndim
        self.worker_reads: list[tuple[int, ...]] = []
        self.converted = 0

    @property
    def size(self):
        return self.arr.size

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        out = self.arr[key]
        if threading.current_thread() is not threading.main_thread():
            self.worker_reads.append(out.shape)
        return out

    def __array__(self, dtype=None, copy=None):
        self.converted += 1
        return np.asarray(self.arr, dtype)


@pytest.fixture
def out_root(tmp_path, monkeypatch):
    """The default output folder, in the test's temporary folder."""
    monkeypatch.setattr(lazy, "OUTPUT_ROOT", tmp_path / "napari-fewcell")
    return tmp_path / "napari-fewcell"


@pytest.fixture
def prompt_widget(make_napari_viewer, out_root):
    viewer = make_napari_viewer()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    widget.settings.device.value = "cpu"
    return viewer, widget


def cells(seed=0):
    return blobs((H, W), seed=seed, n=220, radius=7)


def add_prompt(viewer, mask):
    """'prompt labels' (the true mask inside BOX) and the box layer."""
    y, x, h, w = BOX
    labels = np.zeros((H, W), np.uint8)
    labels[y : y + h, x : x + w] = mask[y : y + h, x : x + w]
    viewer.add_labels(labels, name="cells prompt labels")
    corners = np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]], float)
    viewer.add_shapes([corners], shape_type="rectangle", name=BOX_LAYER)


def segment(qtbot, widget, name: str, adapt: str):
    widget.image_combo.pick(name)
    widget.settings.adapt.value = adapt
    widget.labels_combo.pick("cells prompt labels")
    widget.shapes_combo.pick(BOX_LAYER)
    n = len(widget.viewer.layers)
    click_and_wait(qtbot, widget, widget.segment_button)
    assert len(widget.viewer.layers) == n + 1, widget.status.text()
    out = widget.viewer.layers[-1]
    assert out.name.startswith(f"{name} fewcell")
    return out


def test_segment_dask_layer(prompt_widget, qtbot, out_root):
    viewer, widget = prompt_widget
    img, mask = cells()
    viewer.add_image(da.from_array(img, chunks=256), name="cells")
    viewer.add_image(img.copy(), name="copy")
    add_prompt(viewer, mask)

    out = segment(qtbot, widget, "cells", "none")
    assert isinstance(out.data, zarr.Array) and out.data.shape == (H, W)  # lazy, on disk
    path = out.metadata[lazy.ZARR_KEY]
    assert path.startswith(str(out_root / "cells-")) and path.endswith(".zarr")
    assert f"labels written to {path}" in widget.status.text()

    ref = segment(qtbot, widget, "copy", "none")
    assert isinstance(ref.data, np.ndarray)  # a small in-memory image: as before
    assert np.array_equal(np.asarray(out.data), ref.data) and ref.data.any()
    assert np.array_equal(np.asarray(zarr.open_array(path, mode="r")), ref.data)

    again = segment(qtbot, widget, "cells", "none")  # a second run never overwrites the first
    assert again.name != out.name and again.metadata[lazy.ZARR_KEY] != path


def test_segment_multiscale_reads_blocks_only(prompt_widget, qtbot, monkeypatch, tmp_path):
    """A 2-level multiscale layer (fused path: filters read a wider context) is segmented block by block: level 0
    is never converted to numpy nor read whole (intensity sampled with stride 2, as on images over 4 Mpx)."""
    for module in (core_lazy, image):
        monkeypatch.setattr(module, "sample_step", lambda shape, max_samples=0: 2)
    viewer, widget = prompt_widget
    widget.big_folder.value = str(tmp_path)
    img, mask = cells(seed=1)
    level0 = Spy(img)
    viewer.add_image([level0, Spy(img[::2, ::2].copy())], name="cells", multiscale=True, contrast_limits=(0, 255),
                     scale=(0.5, 0.5), translate=(3, 4))
    viewer.add_image(img.copy(), name="copy", scale=(0.5, 0.5), translate=(3, 4))
    add_prompt(viewer, mask)
    viewer.layers["cells prompt labels"].scale = viewer.layers[BOX_LAYER].scale = (0.5, 0.5)
    viewer.layers["cells prompt labels"].translate = viewer.layers[BOX_LAYER].translate = (3, 4)

    out = segment(qtbot, widget, "cells", "fuse")
    assert out.multiscale and len(out.data) == 2
    assert all(isinstance(level, da.Array) for level in out.data)
    assert [level.shape for level in out.data] == [(H, W), (H // 2, W // 2)]
    assert tuple(out.scale) == (0.5, 0.5) and tuple(out.translate) == (3, 4)
    assert out.metadata[lazy.ZARR_KEY].startswith(str(tmp_path / "cells-"))
    assert level0.converted == 0 and level0.worker_reads, "level 0 was converted to numpy"
    assert max(h * w for h, w in level0.worker_reads) < H * W, "level 0 was read whole"

    ref = segment(qtbot, widget, "copy", "fuse")
    assert np.array_equal(np.asarray(out.data[0]), ref.data) and ref.data.any()
    assert np.array_equal(np.asarray(out.data[1]), ref.data[::2, ::2])


def test_cancel_adds_no_layer_and_says_where_partial_labels_stay(prompt_widget, qtbot):
    viewer, widget = prompt_widget
    img, mask = cells()
    viewer.add_image(da.from_array(img, chunks=256), name="cells")
    add_prompt(viewer, mask)
    widget.settings.adapt.value = "none"
    before = [layer.name for layer in viewer.layers]
    qtbot.mouseClick(widget.segment_button, LEFT)
    assert widget.cancel_button.isEnabled()
    widget.jobs.cancel()
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == before
    text = widget.status.text()
    assert text.startswith("Cancelled; nothing was added.") and "Partly written labels may remain in" in text

    # an in-memory job afterwards says nothing of partial labels
    viewer.add_image(img, name="small")
    widget.image_combo.pick("small")
    qtbot.mouseClick(widget.segment_button, LEFT)
    widget.jobs.cancel()
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=60_000)
    assert widget.status.text() == "Cancelled; nothing was added."


def test_bad_chunks_give_one_sentence(prompt_widget, qtbot, tmp_path):
    viewer, widget = prompt_widget
    arr = zarr.create_array(store=str(tmp_path / "tiny_chunks.zarr"), shape=(64, 64), chunks=(2, 2), dtype="uint8",
                            fill_value=0)
    viewer.add_image(arr, name="cells", contrast_limits=(0, 255))
    labels = np.zeros((64, 64), np.uint8)
    labels[20:40, 20:40] = 1
    viewer.add_labels(labels, name="cells prompt labels")
    viewer.add_shapes([np.array([[0, 0], [0, 64], [64, 64], [64, 0]], float)], shape_type="rectangle",
                      name=BOX_LAYER)
    before = [layer.name for layer in viewer.layers]
    widget.image_combo.pick("cells")
    click_and_wait(qtbot, widget, widget.segment_button)
    text = widget.status.text()
    assert "stored in chunks of 2×2 pixels" in text and "Traceback" not in text and "\n" not in text
    assert [layer.name for layer in viewer.layers] == before


def test_partial_apply_network_to_a_multiscale_dask_layer(make_napari_viewer, qtbot, out_root):
    viewer = make_napari_viewer()
    widget = PartialLabelsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Partial labels")
    img, _ = cells(seed=2)
    d = da.from_array(img, chunks=256)
    viewer.add_image([d, d[::2, ::2], d[::4, ::4]], name="big", multiscale=True, contrast_limits=(0, 255))
    widget.model = SegModel(SegNet(NetConfig(base=8, depth=2, embed_dim=2)), [0, 1], device="cpu")
    viewer.layers.selection.active = viewer.layers["big"]
    click_and_wait(qtbot, widget, widget.apply_button)
    out = viewer.layers["big fewcell net"]
    assert out.multiscale and len(out.data) == 3 and all(isinstance(level, da.Array) for level in out.data)
    assert f"labels written to {out.metadata[lazy.ZARR_KEY]}" in widget.status.text()
    assert np.array_equal(np.asarray(out.data[0]), widget.model.predict(img))


def test_support_apply_perceptron_to_a_dask_layer(make_napari_viewer, qtbot, out_root):
    viewer = make_napari_viewer()
    widget = SupportWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Few-shot support")
    widget.settings.device.value = "cpu"
    small, small_mask = blobs((80, 88), seed=3, n=10)
    viewer.add_image(small, name="a")
    viewer.add_labels(small_mask.copy(), name="a labels")
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()

    img, mask = cells(seed=4)
    viewer.add_image(da.from_array(img, chunks=256), name="big")
    viewer.layers.selection.active = viewer.layers["big"]
    click_and_wait(qtbot, widget, widget.apply_button)
    out = viewer.layers[f"big {RESULT_SUFFIX}"]
    assert isinstance(out.data, zarr.Array)
    assert f"labels written to {out.metadata[lazy.ZARR_KEY]}" in widget.status.text()
    pred = np.asarray(out.data)
    assert np.array_equal(pred, widget.model.predict(img))
    assert (pred == mask).mean() > 0.9


def test_which_layers_go_block_by_block(make_napari_viewer, monkeypatch, out_root):
    viewer = make_napari_viewer()
    img, _ = cells()
    small = viewer.add_image(img, name="small")
    dask2d = viewer.add_image(da.from_array(img, chunks=256), name="dask")
    small_stack = viewer.add_image(da.from_array(np.stack([img, img]), chunks=256), name="small stack")
    assert lazy.lazy_target(small) is None and lazy.lazy_target(small_stack) is None  # as before
    assert isinstance(lazy.lazy_target(dask2d), lazy.LazyTarget)
    monkeypatch.setattr(lazy, "LAZY_PIXELS", 1000)
    assert isinstance(lazy.lazy_target(small), lazy.LazyTarget)  # a big numpy image
    with pytest.raises(FewcellError, match="big lazy stack") as err:
        lazy.lazy_target(small_stack)
    assert str(err.value).count(". ") == 0
    with pytest.raises(FewcellError, match="does not exist"):
        lazy.new_output_path("x", out_root / "missing")


def test_big_images_folder_shows_only_for_a_lazy_image(make_napari_viewer):
    """Issue 22 item 10: the 'Big images: output folder' row is hidden for an in-memory image and shown for a lazy
    (dask) one, following the image chosen."""
    viewer = make_napari_viewer()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    row = widget.big_folder.widget
    viewer.add_image(np.zeros((64, 64), np.uint8), name="small")
    assert widget.image_combo.text == "small" and row.isHidden()
    viewer.add_image(da.zeros((256, 256), chunks=128, dtype=np.uint8), name="lazy")
    widget.image_combo.pick("lazy")
    assert not row.isHidden()
    widget.image_combo.pick("small")
    assert row.isHidden()


@pytest.mark.parametrize("kind", [SupportWidget, PartialLabelsWidget])
def test_the_output_folder_shows_while_a_lazy_image_is_open(make_napari_viewer, kind):
    """The few-shot and partial-labels widgets apply to any open image, so their 'Big images: output folder' row is
    shown while one of the open images is big or lazy, and hidden otherwise."""
    viewer = make_napari_viewer()
    widget = kind(viewer)
    viewer.window.add_dock_widget(widget, name=kind.__name__)
    row = widget.big_folder.widget
    viewer.add_image(np.zeros((64, 64), np.uint8), name="small")
    assert row.isHidden()
    viewer.add_image(da.zeros((256, 256), chunks=128, dtype=np.uint8), name="lazy")
    assert not row.isHidden()
    viewer.layers.remove("lazy")
    assert row.isHidden()
