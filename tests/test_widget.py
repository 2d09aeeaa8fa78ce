"""The prompt-segmentation dock widget, driven like a user would (pytest-qt + napari's viewer fixture).

The shipped weights may be untrained, so only shapes, dtypes and label values are checked.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt

from napari_fewcell._qt.prompt_widget import BOX_LAYER

from .conftest import dice_mean, form_segmenter

TIMEOUT = 60_000  # ms; the CPU may be shared with other jobs
LEFT = Qt.MouseButton.LeftButton


def blobs(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A gray image of bright disks on a dark, slightly noisy background."""
    rng = np.random.default_rng(seed)
    img = rng.normal(20, 3, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[-10:11, -10:11]
    for _ in range(max(4, h * w // 1500)):
        cy, cx, r = rng.integers(10, h - 10), rng.integers(10, w - 10), rng.uniform(5, 10)
        img[cy - 10 : cy + 11, cx - 10 : cx + 11][yy**2 + xx**2 < r * r] = 200
    return np.clip(img, 0, 255).astype(np.uint8)


def paint_disk_in_box(viewer, labels_layer):
    """Paint a disk of 1s in the middle of the (only) prompt box, like a user with the brush."""
    rect = np.asarray(viewer.layers[BOX_LAYER].data[-1])[:, -2:]
    (y0, x0), (y1, x1) = rect.min(0).astype(int), rect.max(0).astype(int)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    yy, xx = np.mgrid[: labels_layer.data.shape[-2], : labels_layer.data.shape[-1]]
    labels_layer.data[(yy - cy) ** 2 + (xx - cx) ** 2 < 12**2] = 1
    labels_layer.refresh()


def click_and_wait(qtbot, widget):
    qtbot.mouseClick(widget.segment_button, LEFT)
    assert not widget.segment_button.isEnabled()
    qtbot.waitUntil(widget.segment_button.isEnabled, timeout=TIMEOUT)


def test_sample_segment(viewer_widget, qtbot, sample):
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    assert widget.image_combo.text == "nuclei"
    assert widget.labels_combo.text == "nuclei prompt labels"
    assert widget.shapes_combo.text == BOX_LAYER
    click_and_wait(qtbot, widget)
    assert "nuclei fewcell" in viewer.layers, widget.status.text()
    out = viewer.layers["nuclei fewcell"]
    assert out.data.shape == (520, 696) and out.data.dtype == np.uint8
    assert set(np.unique(out.data)) <= {0, 1}
    assert dice_mean(out.data, sample["truth"]) > 0.8  # the same engine result as the CLI/API tests
    made = out.metadata["fewcell"]  # provenance: how the result was made
    assert made["boxes"] == [[256, 416, 64, 64]] and made["adapt_path"] in ("none", "fuse")
    assert len(made["weights_sha256"]) == 64 and made["tau"] > 0 and made["prompt_pixels"]["1"] > 0
    # a result layer is never picked as prompt labels
    assert widget.labels_combo.text == "nuclei prompt labels"


def test_add_box_paint_segment(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(blobs(160, 200), name="cells")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    shapes = viewer.layers[BOX_LAYER]
    assert len(shapes.data) == 1 and shapes.shape_type == ["rectangle"]
    rect = np.asarray(shapes.data[0])
    (y0, x0), (y1, x1) = rect.min(0), rect.max(0)
    assert (y1 - y0, x1 - x0) == (64, 64)
    assert y0 >= 0 and x0 >= 0 and y1 <= 160 and x1 <= 200
    labels = viewer.layers["cells prompt labels"]
    assert labels.data.shape == (160, 200) and labels.data.dtype == np.uint8 and not labels.data.any()
    assert viewer.layers.selection.active is labels and labels.mode == "paint" and labels.selected_label == 1

    paint_disk_in_box(viewer, labels)
    click_and_wait(qtbot, widget)
    out = viewer.layers["cells fewcell"]
    assert out.data.shape == (160, 200)
    assert set(np.unique(out.data)) <= {0, 1}


def test_box_with_one_class_is_refused(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    labels = viewer.layers["nuclei prompt labels"]
    labels.data[...] = 0
    labels.refresh()
    before = [layer.name for layer in viewer.layers]
    click_and_wait(qtbot, widget)
    assert "one class" in widget.status.text()
    assert [layer.name for layer in viewer.layers] == before
    assert np.array_equal(viewer.layers["nuclei"].data.shape, (520, 696))


def test_cancel_adds_nothing(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(blobs(3000, 3000, seed=1), name="big")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["big prompt labels"])
    before = [layer.name for layer in viewer.layers]
    # right away (before the worker has done anything) ...
    qtbot.mouseClick(widget.segment_button, LEFT)
    assert widget.cancel_button.isEnabled()
    qtbot.mouseClick(widget.cancel_button, LEFT)
    qtbot.waitUntil(widget.segment_button.isEnabled, timeout=TIMEOUT)
    assert [layer.name for layer in viewer.layers] == before
    assert "cancelled" in widget.status.text().lower()
    assert not widget.cancel_button.isEnabled()
    # ... and in the middle of the tiles (36 of 512 px): the worker stops after the current tile
    qtbot.mouseClick(widget.segment_button, LEFT)
    qtbot.waitUntil(lambda: widget.progress.maximum() == 36, timeout=TIMEOUT)
    qtbot.mouseClick(widget.cancel_button, LEFT)
    qtbot.waitUntil(widget.segment_button.isEnabled, timeout=TIMEOUT)
    assert [layer.name for layer in viewer.layers] == before
    assert "cancelled" in widget.status.text().lower()
    assert widget.progress.value() == 0


def test_stack_segments_current_plane(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    stack = np.stack([blobs(96, 96, seed=s) for s in range(3)])
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), translate=(0, 10, -4))
    viewer.dims.set_current_step(0, 2)
    qtbot.mouseClick(widget.add_box_button, LEFT)
    labels = viewer.layers["stack prompt labels"]
    assert labels.data.shape == (96, 96)
    np.testing.assert_allclose(labels.scale, (0.5, 0.5))
    rect = np.asarray(viewer.layers[BOX_LAYER].data[0])
    assert np.ptp(rect[:, 0]) == 64 and np.ptp(rect[:, 1]) == 64  # data coords of the image plane
    paint_disk_in_box(viewer, labels)

    click_and_wait(qtbot, widget)
    out = viewer.layers["stack fewcell"]
    assert out.data.shape == (96, 96) and out.ndim == 2
    np.testing.assert_allclose(out.scale, (0.5, 0.5))
    np.testing.assert_allclose(out.translate, (10, -4))
    assert set(np.unique(out.data)) <= {0, 1}
    assert "segmented the current plane" in widget.status.text().lower()
    assert "(2,)" in widget.status.text()


def test_instances_output(viewer_widget, qtbot, sample):
    """Output 'instances (watershed)': one label per nucleus; the provenance says so."""
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    widget.output.value = "watershed"
    click_and_wait(qtbot, widget)
    out = viewer.layers["nuclei fewcell"]
    assert len(np.unique(out.data)) - 1 > 10 and "objects" in widget.status.text()
    assert out.metadata["fewcell"]["instances"] == "watershed"


def test_whole_stack(viewer_widget, qtbot):
    """'Segment the whole stack': every plane with the prompt of the plane shown, one Labels stack placed like the
    image, equal plane by plane to segmenting each plane alone."""
    viewer, widget = viewer_widget
    stack = np.stack([blobs(96, 96, seed=s) for s in range(4)])
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), translate=(0, 10, -4))
    viewer.dims.set_current_step(0, 1)
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["stack prompt labels"])
    widget.whole_stack.value = True
    click_and_wait(qtbot, widget)
    out = viewer.layers["stack fewcell"]
    assert out.data.shape == (4, 96, 96), widget.status.text()
    np.testing.assert_allclose(out.scale, (2.0, 0.5, 0.5))
    assert "all 4 planes" in widget.status.text().lower()
    seg = form_segmenter(widget)
    (box,) = out.metadata["fewcell"]["boxes"]  # the box as the engine read it, in the image's pixels
    prompt = seg.prepare_prompt(stack[1], viewer.layers["stack prompt labels"].data, box)
    for z in range(4):
        np.testing.assert_array_equal(out.data[z], seg.segment(stack[z], prompt))


def test_several_prompt_boxes(viewer_widget, qtbot, sample):
    """Every rectangle of the prompt-box layer is part of the prompt; the status counts boxes and pixels per
    class; the result is the engine's for the same boxes."""
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    second = (96, 96, 64, 64)
    y, x, h, w = second
    viewer.layers[BOX_LAYER].add_rectangles([[y, x], [y + h, x + w]])
    labels = viewer.layers["nuclei prompt labels"]
    labels.data[y : y + h, x : x + w] = sample["truth"][y : y + h, x : x + w]
    click_and_wait(qtbot, widget)
    out = viewer.layers["nuclei fewcell"]
    assert out.metadata["fewcell"]["boxes"] == [list(second), [256, 416, 64, 64]]  # in the prompt's fixed order
    assert "2 boxes" in widget.status.text() and "class 1:" in widget.status.text()
    seg = form_segmenter(widget)
    prompt = seg.prepare_prompt_boxes(sample["image"], labels.data, [(256, 416, 64, 64), second])
    np.testing.assert_array_equal(out.data, seg.segment(sample["image"], prompt))
    assert dice_mean(out.data, sample["truth"]) > 0.8


def test_boxes_on_several_planes_of_a_stack(viewer_widget, qtbot):
    """A 3D box layer over a stack: each rectangle is read from its own plane (the prompt: the plane shown and
    the others); the provenance lists each box's plane; the result equals the engine's for the same boxes."""
    viewer, widget = viewer_widget
    stack = np.stack([blobs(96, 96, seed=s) for s in range(4)])
    truth = (stack > 100).astype(np.uint8)
    viewer.add_image(stack, name="stack")
    labels = viewer.add_labels(np.zeros(stack.shape, np.uint8), name="stack prompt labels")
    boxes = {0: (10, 10, 40, 40), 2: (40, 30, 40, 40)}
    for z, (y, x, h, w) in boxes.items():
        labels.data[z, y : y + h, x : x + w] = truth[z, y : y + h, x : x + w]
    viewer.add_shapes([np.array([[z, y, x], [z, y, x + w], [z, y + h, x + w], [z, y + h, x]], float)
                       for z, (y, x, h, w) in boxes.items()], shape_type="rectangle", name=BOX_LAYER)
    widget.labels_combo.pick("stack prompt labels")
    widget.shapes_combo.pick(BOX_LAYER)
    viewer.dims.set_current_step(0, 1)  # no box on the plane shown: the first plane with boxes leads
    click_and_wait(qtbot, widget)
    out = viewer.layers["stack fewcell"]
    meta = out.metadata["fewcell"]
    assert meta["boxes"] == [list(boxes[0]), list(boxes[2])] and meta["box_planes"] == [0, 2], widget.status.text()
    assert "2 boxes" in widget.status.text()
    seg = form_segmenter(widget)
    prompt = seg.prepare_prompt_boxes(stack[0], labels.data[0], [boxes[0]], more=[(stack[2], labels.data[2],
                                                                                    [boxes[2]])])
    np.testing.assert_array_equal(out.data, seg.segment(stack[1], prompt))
    labels2d = viewer.add_labels(np.zeros(stack.shape[1:], np.uint8), name="flat labels")
    widget.labels_combo.pick(labels2d.name)
    qtbot.mouseClick(widget.segment_button, LEFT)
    assert "labels layer of 4 planes" in widget.status.text()


def test_segment_before_any_box_says_what_to_do(viewer_widget, qtbot):
    """Issue 22 item 9: Segment with an image but no box yet says what to do, in one sentence."""
    from napari_fewcell._qt.prompt_widget import NO_BOX

    viewer, widget = viewer_widget
    viewer.add_image(blobs(64, 64), name="cells")
    qtbot.mouseClick(widget.segment_button, LEFT)  # refused before any job starts
    qtbot.waitUntil(lambda: widget.status.text() == NO_BOX, timeout=TIMEOUT)
    assert "press 'Add prompt box', paint inside it, then Segment" in NO_BOX
    assert "cells fewcell" not in viewer.layers


def test_box_and_result_colours_stand_out(viewer_widget, qtbot):
    """Issue 22 items 7 and 8: the prompt box's edge is lime and widens with the image (visible at the fitted view
    of a large image); a one-class result over an RGB image is cyan (yellow over a gray one), not dark red."""
    from napari_fewcell._qt.layers import BOX_COLOR

    viewer, widget = viewer_widget
    rgb = np.stack([blobs(1200, 1200, seed=1)] * 3, axis=-1)
    viewer.add_image(rgb, name="he", rgb=True)
    widget.add_box_button.click()
    assert "inside the lime box" in widget.status.text()  # the hint names the colour the box has
    shapes = viewer.layers[BOX_LAYER]
    assert shapes.edge_width[-1] == 4.0  # 1200 / 300
    assert np.allclose(shapes.edge_color[-1][:3], [0, 1, 0])  # lime
    assert BOX_COLOR == "lime"
    labels = viewer.layers["he prompt labels"]
    y, x = (np.asarray(shapes.data[-1]).min(0)).astype(int)
    labels.data[y : y + 64, x : x + 64] = rgb[y : y + 64, x : x + 64, 0] > 100
    widget.settings.adapt.value = "none"
    click_and_wait(qtbot, widget)
    result = viewer.layers["he fewcell"]
    assert np.allclose(result.colormap.map(np.array([1]))[0], [0, 1, 1, 1])  # cyan
