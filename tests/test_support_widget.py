"""The "Few-shot support" dock widget, driven like a user would (pytest-qt + napari's viewer fixture)."""
from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_fewcell._qt.support_widget import NONE, RESULT_SUFFIX, SupportWidget

from .conftest import JOB_TIMEOUT as TIMEOUT
from .conftest import blobs, click_and_wait, dice_mean

LEFT = Qt.MouseButton.LeftButton


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SupportWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Few-shot support")
    widget.settings.device.value = "cpu"
    return viewer, widget



def test_fit_apply_refit_save_load(viewer_widget, qtbot, tmp_path):
    viewer, widget = viewer_widget
    data = {name: blobs((80, 88), seed=s, n=10) for s, name in enumerate(["a", "b", "c"])}
    for name, (img, _) in data.items():
        viewer.add_image(img, name=name)
    viewer.add_labels(data["a"][1].copy(), name="a labels")
    rows = widget.rows
    assert rows["a"].check.value and rows["a"].labels.text == "a labels"
    assert not rows["b"].check.value and rows["b"].labels.text == NONE

    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert "Fitted on 1 support plane" in widget.status.text()

    # one more support image: refit (features of 'a' come from the cache)
    viewer.add_labels(data["b"][1].copy(), name="b labels")
    assert widget.rows["b"].check.value
    click_and_wait(qtbot, widget, widget.fit_button)
    assert "Fitted on 2 support plane" in widget.status.text()

    widget.apply_to.value = "all"
    n_layers = len(viewer.layers)
    click_and_wait(qtbot, widget, widget.apply_button)
    added = [lay for lay in viewer.layers][n_layers:]
    assert [lay.name for lay in added] == [f"{n} {RESULT_SUFFIX}" for n in "abc"]
    assert dice_mean(np.asarray(viewer.layers[f"c {RESULT_SUFFIX}"].data), data["c"][1]) > 0.9
    assert viewer.layers[f"c {RESULT_SUFFIX}"].name not in widget.rows["c"].labels.shown

    path = widget.save_to(tmp_path / "p")
    assert path.name == "p.npz" and path.is_file()
    widget.model = None
    assert widget.load_from(path) is not None
    assert "Loaded p.npz" in widget.status.text()


def test_stack_boxes_and_current_plane(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    planes = [blobs((72, 72), seed=10 + z, n=9) for z in range(3)]
    viewer.add_image(np.stack([p[0] for p in planes]), name="s")
    labels = np.zeros((3, 72, 72), np.uint8)
    labels[0] = planes[0][1]
    labels[0, 40:] = 0  # only the box (rows 0-39) is read: what lies outside it does not matter
    viewer.add_labels(labels, name="s labels")
    viewer.add_shapes([np.array([[0, 0, 0], [0, 0, 72], [0, 40, 72], [0, 40, 0]], float)],
                      shape_type="rectangle", name="boxes")
    widget.shapes_combo.pick("boxes")
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert widget.model.meta["support"][0]["annotated_pixels"] == 40 * 72

    viewer.dims.set_current_step(0, 2)
    viewer.layers.selection.active = viewer.layers["s"]
    widget.apply_to.value = "plane"  # current plane only
    click_and_wait(qtbot, widget, widget.apply_button)
    out = np.asarray(viewer.layers[f"s {RESULT_SUFFIX}"].data)
    assert out.shape == (3, 72, 72) and not out[0].any() and not out[1].any()
    assert dice_mean(out[2], planes[2][1]) > 0.85


def test_bad_input_and_cancel_leave_the_viewer_alone(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    qtbot.mouseClick(widget.fit_button, LEFT)
    assert "No support image is checked" in widget.status.text()
    img, mask = blobs((64, 64))
    viewer.add_image(img, name="a")
    viewer.add_labels(np.zeros_like(mask), name="a labels")
    click_and_wait(qtbot, widget, widget.fit_button)
    assert "only background" in widget.status.text() and widget.model is None
    qtbot.mouseClick(widget.apply_button, LEFT)
    assert "no perceptron yet" in widget.status.text()
    viewer.layers["a labels"].data = mask
    names = [lay.name for lay in viewer.layers]
    qtbot.mouseClick(widget.fit_button, LEFT)
    widget.jobs.cancel()
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=TIMEOUT)
    assert [lay.name for lay in viewer.layers] == names
    assert widget.model is None and "Cancelled" in widget.status.text()


def test_sample_from_its_one_painted_box(viewer_widget, qtbot, sample):
    """The nuclei sample: fit on the painted 64×64 prompt box only (the Shapes layer), apply to the image."""
    viewer, widget = viewer_widget
    viewer.open_sample("napari-fewcell", "nuclei")
    assert widget.rows["nuclei"].check.value
    assert widget.rows["nuclei"].labels.text == "nuclei prompt labels"
    assert widget.shapes_combo.text == "fewcell prompt boxes"  # the plugin's box layer is the default
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert widget.model.meta["support"][0]["annotated_pixels"] == 64 * 64
    click_and_wait(qtbot, widget, widget.apply_button)
    pred = np.asarray(viewer.layers[f"nuclei {RESULT_SUFFIX}"].data)
    assert dice_mean(pred, sample["truth"] > 0) > 0.85


def test_add_labels_when_the_name_is_taken_by_labels_of_another_shape(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img, mask = blobs((64, 64))
    viewer.add_image(img, name="a")
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="a labels")  # another image's size
    viewer.layers.selection.active = viewer.layers["a"]
    with qtbot.captureExceptions() as exc:
        qtbot.mouseClick(widget.add_labels_button, LEFT)
    assert not exc, exc
    painted = viewer.layers.selection.active
    assert painted.name == "a labels [2]" and painted.data.shape == (64, 64) and painted.mode == "paint"
    assert viewer.layers["a labels"].data.shape == (32, 32)  # left alone
    assert widget.rows["a"].labels.text == "a labels [2]" and widget.rows["a"].check.value
    assert "'a labels [2]'" in widget.status.text()
    painted.data = mask  # the user paints
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert widget.model.meta["support"][0]["annotated_pixels"] == 64 * 64


def test_boxes_that_hold_no_pixel_of_the_image_are_refused(viewer_widget, qtbot):
    """A box outside the image, or a line (no height): one sentence, not the whole image read as annotated."""
    viewer, widget = viewer_widget
    img, mask = blobs((64, 64))
    viewer.add_image(img, name="a")
    viewer.add_labels(mask.copy(), name="a labels")
    boxes = viewer.add_shapes([np.array([[100, 100], [100, 150], [150, 150], [150, 100]], float)],
                              shape_type="rectangle", name="boxes")
    widget.shapes_combo.pick("boxes")
    names = [lay.name for lay in viewer.layers]
    with qtbot.captureExceptions() as exc:
        click_and_wait(qtbot, widget, widget.fit_button)
    assert not exc, exc
    assert widget.model is None and [lay.name for lay in viewer.layers] == names
    assert widget.status.text().startswith("The box Y=100 X=100 H=50 W=50 in 'boxes' lies outside the image 'a'")
    assert "set Boxes to (none)" in widget.status.text()

    boxes.data = []
    boxes.add_lines(np.array([[20, 5], [20, 60]], float))  # a horizontal line: a box of height 0
    with qtbot.captureExceptions() as exc:
        click_and_wait(qtbot, widget, widget.fit_button)
    assert not exc, exc
    assert widget.model is None and "has no height or width" in widget.status.text()

    boxes.data = []
    boxes.add_rectangles(np.array([[0, 0], [0, 64], [40, 64], [40, 0]], float))
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert widget.model.meta["support"][0]["annotated_pixels"] == 40 * 64

    # a second, smaller support image the box misses is read whole, as before: the box is the first image's
    small, small_mask = blobs((40, 40), seed=9)
    viewer.add_image(small, name="b")
    viewer.add_labels(small_mask.copy(), name="b labels")
    boxes.data = []
    boxes.add_rectangles(np.array([[44, 0], [44, 64], [64, 64], [64, 0]], float))  # below b's 40 rows
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.model is not None, widget.status.text()
    assert sorted(sp["annotated_pixels"] for sp in widget.model.meta["support"]) == [20 * 64, 40 * 40]

    # the engine's sentences name the layer as "the image 'c'"
    viewer.add_image(np.stack([img] * 3, -1), name="c", rgb=True)
    viewer.layers.selection.active = viewer.layers["c"]
    click_and_wait(qtbot, widget, widget.apply_button)
    assert widget.status.text().startswith("The image 'c' is colour (RGB) but the perceptron was fitted on gray")


def test_engine_sentences_name_the_image(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    tiny = np.zeros((6, 6), np.uint8)
    tiny[2:4, 2:4] = 200
    viewer.add_image(tiny, name="a")
    viewer.add_labels((tiny > 0).astype(np.uint8), name="a labels")
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.status.text() == "The image 'a' is only 6×6 pixels; it must be at least 8×8."
    viewer.layers.clear()
    img, mask = blobs((64, 64))
    viewer.add_image(np.zeros_like(img), name="b")
    viewer.add_labels(mask, name="b labels")
    click_and_wait(qtbot, widget, widget.fit_button)
    assert widget.status.text().startswith("Image 'b' is uniform (every pixel has the same value)")
    assert widget.model is None
