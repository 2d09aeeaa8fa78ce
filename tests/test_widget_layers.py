"""Which layers the prompt and partial-labels widgets read and write, found by an audit of the widgets (2026-12-08):
a user's own Labels or Shapes layer is never painted in or read unasked, a second image gets its own prompt layers,
a failed Live run leaves its sentence and no empty layer, and a box layer holds rectangles only."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell._qt.prompt_widget import BOX_LAYER

from .test_live_widget import stroke
from .test_widget import LEFT, TIMEOUT, blobs, click_and_wait, paint_disk_in_box


def test_add_box_leaves_the_users_own_layers_alone(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img = blobs(128, 128, seed=1)
    viewer.add_image(img, name="img")
    truth = viewer.add_labels((img > 100).astype(np.uint8), name="ground truth")
    mine = viewer.add_shapes([np.array([[5, 5], [5, 30], [30, 18]], float)], shape_type="polygon",
                             name="my annotations")
    before = truth.data.copy()
    qtbot.mouseClick(widget.add_box_button, LEFT)
    assert len(mine.data) == 1 and np.array_equal(truth.data, before)
    assert widget.labels_combo.text == "img prompt labels" and widget.shapes_combo.text == BOX_LAYER
    assert viewer.layers.selection.active is viewer.layers["img prompt labels"]


def test_partial_add_box_leaves_the_users_shapes_alone(make_napari_viewer, qtbot):
    from napari_fewcell._qt.partial_widget import BOX_LAYER as PARTIAL_BOXES
    from napari_fewcell._qt.partial_widget import PartialLabelsWidget

    viewer = make_napari_viewer()
    widget = PartialLabelsWidget(viewer)
    viewer.add_image(blobs(128, 128, seed=2), name="img")
    mine = viewer.add_shapes([np.array([[5, 5], [5, 30], [30, 18]], float)], shape_type="polygon",
                             name="my annotations")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    assert len(mine.data) == 1 and len(viewer.layers[PARTIAL_BOXES].data) == 1


def test_a_second_image_gets_its_own_prompt_layers(viewer_widget, qtbot):
    """Add box, paint, Segment on A; then the same on B (another size): B's prompt is B's box and paint alone."""
    viewer, widget = viewer_widget
    viewer.add_image(blobs(96, 96, seed=3), name="A")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["A prompt labels"])
    click_and_wait(qtbot, widget)
    assert "A fewcell" in viewer.layers, widget.status.text()
    viewer.add_image(blobs(80, 112, seed=4), name="B")
    widget.image_combo.pick("B")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    labels, boxes = viewer.layers["B prompt labels"], viewer.layers[f"{BOX_LAYER} (B)"]
    assert labels.data.shape == (80, 112) and len(boxes.data) == 1 and len(viewer.layers[BOX_LAYER].data) == 1
    assert widget.labels_combo.layer is labels and widget.shapes_combo.layer is boxes
    rect = np.asarray(boxes.data[0])
    (y0, x0), (y1, x1) = rect.min(0).astype(int), rect.max(0).astype(int)
    labels.data[(y0 + y1) // 2 - 8 : (y0 + y1) // 2 + 8, (x0 + x1) // 2 - 8 : (x0 + x1) // 2 + 8] = 1
    click_and_wait(qtbot, widget)
    assert "B fewcell" in viewer.layers, widget.status.text()
    assert viewer.layers["B fewcell"].metadata["fewcell"]["boxes"] == [[int(y0), int(x0), 64, 64]]


def test_live_keeps_its_sentence_and_adds_no_empty_layer(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(blobs(128, 128, seed=5), name="img")
    qtbot.mouseClick(widget.add_box_button, LEFT)  # a box, painted with nothing: only background
    n_layers = len(viewer.layers)
    widget.live_check.value = True
    qtbot.waitUntil(lambda: widget.live.started == 1 and widget.live.worker is None, timeout=TIMEOUT)
    assert "only background" in widget.status.text()
    assert "up to date" not in widget.status.text() and len(viewer.layers) == n_layers
    rect = np.asarray(viewer.layers[BOX_LAYER].data[0])
    (y0, x0), (y1, x1) = rect.min(0).astype(int), rect.max(0).astype(int)
    stroke(viewer.layers["img prompt labels"], ((y0 + y1) // 2, (x0 + x1) // 2), size=20)  # Live goes on
    qtbot.waitUntil(lambda: widget.live.finished == 1, timeout=TIMEOUT)
    assert "Live: up to date" in widget.status.text() and "img fewcell live" in viewer.layers


@pytest.mark.parametrize("kind", ["ellipse", "line", "polygon"])
def test_a_box_layer_holds_rectangles_only(viewer_widget, qtbot, kind):
    viewer, widget = viewer_widget
    viewer.add_image(blobs(128, 128, seed=6), name="img")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["img prompt labels"])
    corners = {"ellipse": [[10, 10], [10, 50], [50, 50], [50, 10]], "line": [[16, 16], [64, 64]],
               "polygon": [[5, 5], [5, 60], [60, 30]]}[kind]
    viewer.layers[BOX_LAYER].add(np.array(corners, float), shape_type=kind)
    n_layers = len(viewer.layers)
    qtbot.mouseClick(widget.segment_button, LEFT)  # refused before any work
    assert f"Shape 2 of the layer '{BOX_LAYER}' is a {kind}, not a rectangle" in widget.status.text()
    assert len(viewer.layers) == n_layers
