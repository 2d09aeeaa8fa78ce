"""The "Partial labels" dock widget, driven like a user would (pytest-qt + napari's viewer fixture).

Tiny images, one epoch of two steps and three training steps: the machine may be shared.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_fewcell._qt import partial_widget as pw
from napari_fewcell._qt.partial_widget import BOX_LAYER, UNANNOTATED, PartialLabelsWidget
from napari_fewcell.engine.core.annotation import annotate
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.files import read_labels_meta
from napari_fewcell.engine.partial import TrainParams

from .conftest import blobs, dice_mean

TIMEOUT = 120_000  # ms; the CPU may be shared with other jobs
LEFT = Qt.MouseButton.LeftButton
N = 96
BOX = np.array([[16, 16], [16, 80], [80, 80], [80, 16]], float)  # (y, x) corners: the box (16, 16, 64, 64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = PartialLabelsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Partial labels")
    widget.stage1.epochs.value = 1
    widget.stage1.steps_per_epoch.value = 2
    widget.stage1.device.value = "cpu"
    return viewer, widget


def two_images(viewer, box=BOX):
    """Images 'a' (annotated inside one box by 'a labels' = its true mask) and 'b' (unannotated)."""
    (a, am), (b, bm) = blobs((N, N), seed=0), blobs((N, N), seed=1)
    viewer.add_image(a, name="a")
    viewer.add_image(b, name="b")
    viewer.add_labels(am.copy(), name="a labels")
    if box is not None:
        viewer.add_shapes([box], shape_type="rectangle", name=BOX_LAYER)
    return {"a": am, "b": bm}


def click_and_wait(qtbot, widget, button):
    qtbot.mouseClick(button, LEFT)
    qtbot.waitUntil(widget.generate_button.isEnabled, timeout=TIMEOUT)


def snapshot(viewer):
    """Layer names and copies of their data (a Shapes layer's data is a list of arrays)."""
    return [(layer.name, [np.array(d) for d in layer.data] if isinstance(layer.data, list) else np.array(layer.data))
            for layer in viewer.layers]


def assert_same(viewer, before):
    after = snapshot(viewer)
    assert [name for name, _ in after] == [name for name, _ in before]
    for (name, old), (_, new) in zip(before, after):
        if isinstance(old, list):
            assert len(old) == len(new) and all(np.array_equal(o, n) for o, n in zip(old, new)), name
        else:
            assert old.dtype == new.dtype and np.array_equal(old, new), name


def test_rows_and_defaults(viewer_widget):
    viewer, widget = viewer_widget
    two_images(viewer)
    viewer.add_labels(np.zeros((50, 50), np.uint8), name="other shape")
    viewer.add_image(np.zeros((N, N)), name="old result", metadata={"fewcell_result": True})
    viewer.add_labels(np.zeros((N, N), np.uint8), name="res", metadata={"fewcell_result": True})
    rows = widget.rows
    assert list(rows) == ["a", "b", "old result"]
    assert rows["a"].check.value and rows["b"].check.value and not rows["old result"].check.value
    assert rows["a"].labels.text == "a labels"
    assert rows["b"].labels.text == UNANNOTATED  # 'a labels' is named after another image
    items = rows["b"].labels.shown
    assert items == [UNANNOTATED, "a labels"]  # neither the result layer nor labels of another shape
    assert widget.shapes_combo.text == BOX_LAYER
    # a user's choice survives rebuilds; a rename rebuilds the rows
    rows["b"].check.value = False
    rows["b"].labels.pick("a labels")
    viewer.layers["a"].name = "a2"
    assert list(widget.rows) == ["a2", "b", "old result"]
    assert not widget.rows["b"].check.value and widget.rows["b"].labels.text == "a labels"
    assert widget.rows["a2"].labels.text == "a labels"  # the only candidate not named after an image


def test_generate_export_and_fixes(viewer_widget, qtbot, tmp_path, monkeypatch):
    viewer, widget = viewer_widget
    truth = two_images(viewer)
    click_and_wait(qtbot, widget, widget.generate_button)
    for name, mask in truth.items():
        layer = viewer.layers[f"{name} pseudo-labels"]
        assert layer.data.shape == (N, N), widget.status.text()
        assert layer.metadata["fewcell_result"] and layer.metadata["fewcell_pseudo_of"] == name
        assert np.array_equal(layer.metadata["fewcell_original"], layer.data)
        chance = max(dice_mean(np.full_like(mask, v), mask) for v in (0, 1))  # best constant prediction
        assert dice_mean(layer.data, mask) > max(0.8, chance + 0.3), (name, dice_mean(layer.data, mask), chance)
    assert list(widget.classes) == [0, 1] and [h["epoch"] for h in widget.history] == [0, 1]
    assert "pseudo" in widget.status.text() and "epoch 1" in widget.status.text()
    assert widget.progress.value() == widget.progress.maximum()

    # export: one TIFF per checked image, then a second export into the same folder writes nothing
    monkeypatch.setattr(pw.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    qtbot.mouseClick(widget.export_button, LEFT)
    files = {name: tmp_path / f"{name}.tif" for name in truth}
    for name, path in files.items():
        assert np.array_equal(tifffile.imread(path), viewer.layers[f"{name} pseudo-labels"].data)
        assert read_labels_meta(path)["source"] == name
    stamp = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files.values()}
    viewer.layers["a pseudo-labels"].data[0, 0] += 1  # a different result must still not overwrite
    qtbot.mouseClick(widget.export_button, LEFT)
    assert "already exists" in widget.status.text()
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files.values()} == stamp
    viewer.layers["a pseudo-labels"].data[0, 0] -= 1
    widget.export_as.value = "components"
    monkeypatch.setattr(pw.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "inst"))
    qtbot.mouseClick(widget.export_button, LEFT)
    inst = tifffile.imread(tmp_path / "inst" / "a.tif")
    assert inst.shape == (N, N) and inst.max() > 1 and read_labels_meta(tmp_path / "inst" / "a.tif")["kind"] == \
        "instances"

    # fixes: pixels edited outside the box are passed as known next time
    layer = viewer.layers["a pseudo-labels"]
    edited = np.zeros((N, N), bool)
    edited[84:, :12] = True  # outside the box (16..80)
    layer.data[edited] = 1 - layer.data[edited]
    layer.refresh()
    calls = []
    real = pw.annotate

    def spy(image, labels=None, boxes=(), fixes=None, name="image", full=False):
        calls.append({"name": name, "labels": labels, "boxes": list(boxes), "fixes": fixes})
        return real(image, labels, boxes, fixes=fixes, name=name, full=full)

    monkeypatch.setattr(pw, "annotate", spy)
    click_and_wait(qtbot, widget, widget.generate_button)
    by_name = {c["name"]: c for c in calls}
    assert np.array_equal(by_name["a"]["fixes"], edited)
    assert np.array_equal(by_name["a"]["labels"][edited], layer.data[edited])
    assert by_name["a"]["boxes"] == [(16, 16, 64, 64)]
    assert by_name["b"]["fixes"] is None and by_name["b"]["labels"] is None
    newest = viewer.layers["a pseudo-labels [1]"]  # the new round's layer, beside the edited one
    assert newest is not layer and newest.metadata["fewcell_pseudo_of"] == "a"
    assert np.array_equal(newest.data[edited], layer.data[edited])  # known pixels keep the user's values
    assert np.array_equal(newest.metadata["fewcell_fixes"], edited)  # carried on to the next round


def test_train_apply_save_load(viewer_widget, qtbot, tmp_path, monkeypatch):
    viewer, widget = viewer_widget
    truth = two_images(viewer)
    for name, mask in truth.items():  # pseudo-label layers as Generate makes them (the truth, to save time)
        viewer.add_labels(mask.copy(), name=f"{name} pseudo-labels",
                          metadata={"fewcell_result": True, "fewcell_pseudo_of": name, "fewcell_original": mask})
    fixed = np.zeros((N, N), bool)
    fixed[:6, :6] = True  # the user paints over a mistake: self-training keeps what they painted
    viewer.layers["a pseudo-labels"].data[fixed] = 1
    widget.stage2.steps.value = 3
    assert widget.stage2.init.value == TrainParams.init and widget.stage2.rounds.value == TrainParams.rounds
    widget.stage2.init.value = "pretrained"  # the U-Net's body starts from the shipped embedding network
    widget.stage2.rounds.value = 2  # the default: self-training keeps the user's fixes
    qtbot.mouseClick(widget.apply_button, LEFT)
    assert "no network" in widget.status.text().lower()
    requests, real = [], pw.TrainRequest
    monkeypatch.setattr(pw, "TrainRequest", lambda *a, **k: requests.append(real(*a, **k)) or requests[-1])
    click_and_wait(qtbot, widget, widget.train_button)
    assert widget.model is not None, widget.status.text()
    assert list(widget.model.classes) == [0, 1] and widget.model.card["images"] == ["a", "b"]
    assert widget.model.card["params"]["init"] == "pretrained" and widget.model.card["rounds"] == 2
    assert widget.model.card["params"]["steps"] == 3  # the form's value
    kept = requests[0].keep
    assert np.array_equal(kept[0], fixed & (truth["a"] != 1)) and not kept[1].any()
    viewer.layers.selection.active = viewer.layers["b"]
    click_and_wait(qtbot, widget, widget.apply_button)
    out = viewer.layers["b fewcell net"]
    assert out.data.shape == (N, N) and out.metadata["fewcell_result"] and set(np.unique(out.data)) <= {0, 1}

    monkeypatch.setattr(pw.QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "net"), ""))
    qtbot.mouseClick(widget.save_button, LEFT)
    assert (tmp_path / "net.pt").is_file() and (tmp_path / "net.json").is_file(), widget.status.text()
    trained = widget.model
    monkeypatch.setattr(pw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "net.pt"), ""))
    qtbot.mouseClick(widget.load_button, LEFT)
    assert widget.model is not trained and list(widget.model.classes) == [0, 1], widget.status.text()
    viewer.layers.selection.active = viewer.layers["b"]  # the new layer was selected
    click_and_wait(qtbot, widget, widget.apply_button)
    assert np.array_equal(viewer.layers["b fewcell net [1]"].data, out.data)  # the same network

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    monkeypatch.setattr(pw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(junk), ""))
    loaded = widget.model
    qtbot.mouseClick(widget.load_button, LEFT)
    text = widget.status.text()
    assert "not a napari-fewcell model" in text and "Traceback" not in text and "\n" not in text
    assert widget.model is loaded


def test_cancel_changes_nothing(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    two_images(viewer)
    widget.stage1.epochs.value = 50
    made = []
    real = pw.pseudo_job
    monkeypatch.setattr(pw, "pseudo_job", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    before = snapshot(viewer)
    qtbot.mouseClick(widget.generate_button, LEFT)
    assert widget.cancel_button.isEnabled() and not widget.train_button.isEnabled()
    qtbot.waitUntil(lambda: widget.progress.maximum() == 100 and widget.progress.value() >= 1, timeout=TIMEOUT)
    assert "epoch 1/50" in widget.status.text()
    qtbot.mouseClick(widget.cancel_button, LEFT)
    qtbot.waitUntil(widget.generate_button.isEnabled, timeout=TIMEOUT)
    assert_same(viewer, before)
    assert widget.status.text() == "Cancelled."
    assert not widget.cancel_button.isEnabled() and widget.train_button.isEnabled()
    assert widget.classes is None
    assert len(made) == 1 and inspect.getgeneratorstate(made[0]) == inspect.GEN_CLOSED  # the engine was stopped


@pytest.mark.parametrize("case, expected", [
    ("no box", "no annotated box"),
    ("outside", "is not inside"),
    ("overlap", "overlap"),
    ("everything", "every pixel is already annotated"),
])
def test_bad_input_adds_nothing(viewer_widget, qtbot, case, expected):
    viewer, widget = viewer_widget
    two_images(viewer, box=None if case == "no box" else BOX)
    shapes = viewer.layers[BOX_LAYER] if case != "no box" else None
    if case == "outside":
        shapes.add_rectangles(BOX + 40)
    elif case == "overlap":
        shapes.add_rectangles(BOX + 10)
    elif case == "everything":
        shapes.data = [np.array([[0, 0], [0, N], [N, N], [N, 0]], float)]
        widget.rows["b"].check.value = False
    before = snapshot(viewer)
    click_and_wait(qtbot, widget, widget.generate_button)
    assert expected in widget.status.text().lower()
    assert_same(viewer, before)


def test_stack(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    pairs = [blobs((N, N), seed=s) for s in range(3)]
    stack, truth = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    viewer.add_image(stack, name="st", scale=(2.0, 1.0, 1.0))
    labels = np.zeros_like(truth)
    labels[1] = truth[1]  # only plane 1 is annotated
    viewer.add_labels(labels, name="st labels", scale=(2.0, 1.0, 1.0))
    viewer.add_shapes([BOX], shape_type="rectangle", name=BOX_LAYER)  # 2D: applies to every annotated plane
    click_and_wait(qtbot, widget, widget.generate_button)
    out = viewer.layers["st pseudo-labels"]
    assert out.data.shape == (3, N, N) and out.ndim == 3, widget.status.text()
    np.testing.assert_allclose(out.scale, (2.0, 1.0, 1.0))
    assert np.array_equal(out.data[1, 16:80, 16:80], truth[1, 16:80, 16:80])  # annotated pixels are kept
    assert dice_mean(out.data, truth) > 0.8


def test_add_box_on_a_stack_annotates_that_plane(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    pairs = [blobs((N, N), seed=s) for s in range(3)]
    viewer.add_image(np.stack([p[0] for p in pairs]), name="st")
    viewer.dims.set_current_step(0, 2)
    qtbot.mouseClick(widget.add_box_button, LEFT)
    shapes, labels = viewer.layers[BOX_LAYER], viewer.layers["st labels"]
    rect = np.asarray(shapes.data[0])
    assert shapes.ndim == 3 and np.all(rect[:, 0] == 2)  # the rectangle carries its plane
    assert np.ptp(rect[:, 1]) == 64 and np.ptp(rect[:, 2]) == 64
    assert labels.data.shape == (3, N, N) and viewer.layers.selection.active is labels and labels.mode == "paint"
    assert widget.rows["st"].labels.text == "st labels"
    (y0, x0) = rect[:, 1:].min(0).astype(int)
    labels.data[2, y0 : y0 + 64, x0 : x0 + 64] = pairs[2][1][y0 : y0 + 64, x0 : x0 + 64]
    labels.data[0, :5, :5] = 1  # plane 0 has labels but no box of its own
    calls = []

    def spy(im, lab=None, boxes=(), **k):
        calls.append((lab is not None, list(boxes)))
        if len(calls) == 3:  # stop right after the annotations are built, as bad input would
            raise FewcellError("Stopped by the test.")
        return annotate(im, lab, boxes, **k)

    monkeypatch.setattr(pw, "annotate", spy)
    qtbot.mouseClick(widget.generate_button, LEFT)
    assert widget.status.text() == "Stopped by the test."
    assert calls == [(True, []), (False, []), (True, [(y0, x0, 64, 64)])]


def test_writer_through_viewer_layers_save(make_napari_viewer, tmp_path):
    """napari's own File ▸ Save Selected Layers path reaches our npe2 writer (name, metadata, stack)."""
    viewer = make_napari_viewer()
    stack = np.zeros((2, 24, 32), np.uint8)
    stack[1, 4:9, 3:20] = 2
    viewer.add_labels(stack, name="cells pseudo-labels",
                      metadata={"fewcell_pseudo_of": "cells", "fewcell_classes": {2: "nucleus"}})
    written = viewer.layers.save(str(tmp_path / "out.tif"), selected=False, plugin="napari-fewcell")
    assert written == [str(tmp_path / "out.tif")]
    back = tifffile.imread(written[0])
    assert back.shape == (2, 24, 32) and np.array_equal(back, stack)
    meta = read_labels_meta(written[0])
    assert meta["source"] == "cells" and meta["classes"] == {"2": "nucleus"} and meta["layer"] == "cells pseudo-labels"


def test_oneshot_checkbox_marks_annotated_images_fully_known(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    truth = two_images(viewer)
    seen = []
    monkeypatch.setattr(pw, "annotate", lambda *a, **k: seen.append(k["full"]) or annotate(*a, **k))
    widget.oneshot.value = True
    click_and_wait(qtbot, widget, widget.generate_button)
    assert seen == [True, False]  # 'a' has labels (fully known), 'b' has none
    assert dice_mean(viewer.layers["b pseudo-labels"].data, truth["b"]) > 0.8, widget.status.text()
