"""Corrections and live update in the prompt-segmentation widget (issue 14, items 1 and 2), driven headless."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_fewcell._qt.prompt_widget import BOX_LAYER
from napari_fewcell.engine.prompt import REACH, corrections_from_edit, local_changes

from .conftest import form_segmenter
from .test_widget import LEFT, TIMEOUT, blobs, click_and_wait, paint_disk_in_box


def set_adapt(widget, value: str) -> None:
    widget.settings.adapt.value = value


def test_a_correction_on_the_result_joins_the_next_prompt(viewer_widget, qtbot, sample):
    """Edit the result (erase an area, paint a nucleus), Segment again: the changed pixels are correction keys
    (the status and the provenance count them), the new result keeps them, and equals the engine's. The result
    changes only near the strokes (PromptParams.stroke_reach "local", the default): far from them it is the edited
    result as it was."""
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    set_adapt(widget, "none")
    click_and_wait(qtbot, widget)
    first = viewer.layers["nuclei fewcell"]
    produced = first.data.copy()
    first.data[:48, :48] = 0  # a false detection erased
    first.data[300:304, 20:40] = 1  # a missed nucleus painted
    edited = first.data.copy()
    changed = int((edited != produced).sum())
    assert changed > 0
    click_and_wait(qtbot, widget)
    second = viewer.layers[-1]
    assert second is not first and second.name.startswith("nuclei fewcell")
    assert f"{changed} corrected pixels" in widget.status.text(), widget.status.text()
    assert second.metadata["fewcell"]["corrections"]["stroke_pixels"] == changed
    mask = edited != produced
    np.testing.assert_array_equal(second.data[mask], edited[mask])  # what the user changed stays
    np.testing.assert_array_equal(first.data, edited)  # the edited layer is kept as it was
    seg = form_segmenter(widget)
    corr = corrections_from_edit(produced, edited, [sample["box"]])
    prompt = seg.prepare_prompt_boxes(sample["image"], viewer.layers["nuclei prompt labels"].data, [sample["box"]],
                                      [(sample["image"], corr)])
    new = seg.segment(sample["image"], prompt)
    np.testing.assert_array_equal(second.data, local_changes(edited, new, corr))
    far = ndi.distance_transform_edt(corr < 0) > REACH
    np.testing.assert_array_equal(second.data[far], edited[far])
    assert (new[far] != edited[far]).any()  # the stroke, learnt everywhere, would have changed them


def test_overlapping_boxes_the_later_one_counts_and_the_status_says_so(viewer_widget, qtbot, sample):
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    y, x = 256 + 32, 416 + 16  # overlaps the sample's box by 32 × 48 pixels
    viewer.layers[BOX_LAYER].add_rectangles([[y, x], [y + 64, x + 64]])
    labels = viewer.layers["nuclei prompt labels"]
    labels.data[y : y + 64, x : x + 64] = sample["truth"][y : y + 64, x : x + 64]
    click_and_wait(qtbot, widget)
    assert "1536 pixels lie in two boxes: they count once" in widget.status.text()


def test_a_correction_on_another_plane_is_read_from_that_plane(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    stack = np.stack([blobs(96, 96, seed=s) for s in range(3)])
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 1)
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["stack prompt labels"])
    set_adapt(widget, "none")
    click_and_wait(qtbot, widget)
    result = viewer.layers["stack fewcell"]
    assert result.data.shape == (96, 96)
    result.data[:10, :10] = 0
    result.data[80:84, 80:90] = 1
    viewer.dims.set_current_step(0, 2)
    click_and_wait(qtbot, widget)
    text = widget.status.text()
    assert "corrected pixels" in text and "painted on plane 1: read from that plane" in text, text


def test_live_on_a_stack_is_refused_with_one_sentence(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(np.stack([blobs(64, 64, seed=s) for s in range(2)]), name="stack")
    widget.live_check.value = True
    assert not widget.live_check.value
    assert "Live update works on a 2D image" in widget.status.text() and "a stack" in widget.status.text()


def live_setup(viewer, widget, qtbot, size=(256, 256), adapt="none"):
    img = blobs(*size, seed=3)
    viewer.add_image(img, name="cells")
    qtbot.mouseClick(widget.add_box_button, LEFT)
    paint_disk_in_box(viewer, viewer.layers["cells prompt labels"])
    set_adapt(widget, adapt)
    widget.live_check.value = True
    qtbot.waitUntil(lambda: widget.live.finished == 1, timeout=TIMEOUT)
    return img, widget.live.layer


def stroke(labels, center, value=1, size=4):
    """One brush stroke, as napari records it: one paint event."""
    labels.brush_size = size
    labels.paint(center, value)


def test_live_a_stroke_gives_exactly_one_update_of_one_layer(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img, layer = live_setup(viewer, widget, qtbot)
    live, labels = widget.live, viewer.layers["cells prompt labels"]
    n_layers = len(viewer.layers)
    for k in range(3):  # three quick strokes (within the debounce): one update
        stroke(labels, (120 + k, 120))
    qtbot.waitUntil(lambda: live.finished == 2, timeout=TIMEOUT)
    qtbot.wait(3 * 300)  # nothing else comes
    assert live.started == 2 and live.finished == 2 and live.stopped == 0
    assert len(viewer.layers) == n_layers and live.layer is layer  # updated in place
    seg = form_segmenter(widget)
    boxes = [tuple(b) for b in layer.metadata["fewcell"]["boxes"]]  # the boxes as the engine read them
    expected = seg.segment(img, seg.prepare_prompt_boxes(img, labels.data, boxes))
    assert (layer.data == expected).mean() > 0.999  # the same labels as Segment (embeddings cached as float16)
    assert "Live: up to date" in widget.status.text()
    assert layer.metadata["fewcell"]["live"] and len(boxes) == len(viewer.layers[BOX_LAYER].data)


def test_live_a_second_stroke_cancels_the_first_run(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    live_setup(viewer, widget, qtbot, size=(512, 512), adapt="fuse")  # the fused pass keeps a run busy a while
    live, labels = widget.live, viewer.layers["cells prompt labels"]
    stroke(labels, (230, 230))
    qtbot.waitUntil(lambda: live.started == 2, timeout=TIMEOUT)
    stroke(labels, (282, 282))
    qtbot.waitUntil(lambda: live.finished == 2, timeout=TIMEOUT)
    assert live.stopped == 1 and live.started == 3


def test_live_a_correction_on_the_live_layer_stays_and_joins_the_prompt(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    _, layer = live_setup(viewer, widget, qtbot)
    live = widget.live
    painted_before = viewer.layers["cells prompt labels"].data.copy()
    empty = np.argwhere(layer.data[8:-8, 8:64] == 0)[0] + (8, 8)  # background, far from the box
    layer.brush_size = 6
    layer.paint(tuple(empty), 1)  # a correction stroke: "this is an object"
    painted = layer.data == 1
    qtbot.waitUntil(lambda: live.finished == 2, timeout=TIMEOUT)
    assert (live.corrections >= 0).sum() > 0
    y, x = empty
    assert (layer.data[y - 2 : y + 2, x - 2 : x + 2] == 1).all()  # what the user painted stays
    assert (layer.data[painted] == 1).mean() > 0.9
    assert "corrected pixels" in widget.status.text()
    np.testing.assert_array_equal(viewer.layers["cells prompt labels"].data, painted_before)  # other layers kept


def test_live_a_correction_changes_the_result_only_near_it(viewer_widget, qtbot):
    """A wide stroke saying "this background is an object": learnt for the whole image it would turn background
    far away into objects too (checked on the engine); Live keeps the change near the stroke (stroke_reach)."""
    viewer, widget = viewer_widget
    img, layer = live_setup(viewer, widget, qtbot, adapt="fuse")  # the fused path's forest learns the stroke
    live = widget.live
    y, x = np.argwhere(layer.data[8:-8, 8:64] == 0)[0] + (8, 8)
    layer.brush_size = 16
    layer.paint((y, x), 1)
    before = layer.data.copy()
    qtbot.waitUntil(lambda: live.finished == 2, timeout=TIMEOUT)
    corr = live.corrections
    far = ndi.distance_transform_edt(corr < 0) > REACH
    np.testing.assert_array_equal(layer.data[far], before[far])
    seg = form_segmenter(widget)
    boxes = [tuple(b) for b in layer.metadata["fewcell"]["boxes"]]
    everywhere = seg.segment(img, seg.prepare_prompt_boxes(img, viewer.layers["cells prompt labels"].data, boxes,
                                                          corr))
    assert (everywhere[far] != before[far]).any()  # what "everywhere" would have changed
