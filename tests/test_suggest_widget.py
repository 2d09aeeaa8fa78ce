"""The "What to annotate next" dock widget: suggest → next → paint → accept → refit, headless."""
from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_fewcell._qt.suggest_widget import BOXES, PREDICTION, SUGGESTIONS, SuggestWidget

from .conftest import JOB_TIMEOUT as TIMEOUT
from .conftest import blobs, click_and_wait, dice_mean

LEFT = Qt.MouseButton.LeftButton

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SuggestWidget(viewer)
    viewer.window.add_dock_widget(widget, name="What to annotate next")
    widget.settings.device.value = "cpu"
    widget.settings.tile.value = 64
    widget.settings.top.value = 3
    return viewer, widget



def _centre(viewer):
    scene = getattr(viewer, "scene", None)
    return np.asarray((scene.camera if scene is not None else viewer.camera).center, float)[-2:]


def test_suggest_next_accept_refit_skip(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img, mask = blobs((128, 192), seed=7, n=24)
    viewer.add_image(img, name="cells")
    widget.settings.score.value = "consistency"  # a model's score: its features are prepared between rounds

    click_and_wait(qtbot, widget, widget.suggest_button)
    sugg = viewer.layers[SUGGESTIONS]
    assert len(sugg.data) == 3 and widget.list.count() == 3, widget.status.text()
    assert list(sugg.features["rank"]) == [1, 2, 3]
    assert widget.list.item(0).text().startswith("1. cells: y ")
    # while the user paints, the features of the tiles left are computed in the background for the next rescore
    qtbot.waitUntil(lambda: widget.background is None, timeout=TIMEOUT)
    assert widget.session.tiles_prepared == 4 * widget.session.tiles_left()

    # Next: the camera goes to the best tile, a box and a labels layer to paint in appear
    qtbot.mouseClick(widget.next_button, LEFT)
    first = widget.suggestions[0]
    y, x, h, w = first.box
    assert np.allclose(_centre(viewer), (y + h / 2, x + w / 2))
    assert len(viewer.layers[BOXES].data) == 1
    labels = viewer.layers["cells labels"]
    assert viewer.layers.selection.active is labels and labels.mode == "paint"

    # the user paints the tile (here: the truth inside the box) and accepts
    data = np.asarray(labels.data)
    data[y : y + h, x : x + w] = mask[y : y + h, x : x + w]
    labels.data = data
    click_and_wait(qtbot, widget, widget.accept_button)
    session = widget.session
    assert list(session.accepted) == [(0, first.box)], widget.status.text()
    # the new suggestions come first; the prediction layer follows in the background (not asserted: it may be done)
    qtbot.waitUntil(lambda: f"cells {PREDICTION}" in viewer.layers, timeout=TIMEOUT)
    assert "'fewcell prediction' updated" in widget.status.text()
    pred = viewer.layers[f"cells {PREDICTION}"]
    assert dice_mean(np.asarray(pred.data), mask) > 0.85
    # rescored: the accepted tile is no longer suggested
    assert widget.list.count() == 3 and all(s.box != first.box for s in widget.suggestions)
    assert "Refitted on 1 accepted tile" in widget.status.text()

    # Skip: the suggestion is passed by and never suggested again; Next moved on
    qtbot.mouseClick(widget.next_button, LEFT)
    skipped = widget.suggestions[0].box
    qtbot.mouseClick(widget.skip_button, LEFT)
    assert session.skipped == {0: [skipped]} and widget.current == 1
    assert widget.list.item(0).text().endswith("skipped")

    # a second accepted tile: the prediction layer is updated in place, not duplicated
    s = widget.suggestions[widget.current]
    y, x, h, w = s.box
    data = np.asarray(labels.data)
    data[y : y + h, x : x + w] = mask[y : y + h, x : x + w]
    labels.data = data
    n_layers = len(viewer.layers)
    click_and_wait(qtbot, widget, widget.accept_button)
    qtbot.waitUntil(lambda: "2 accepted tile(s); 'fewcell prediction' updated" in widget.status.text(),
                    timeout=TIMEOUT)
    assert len(session.accepted) == 2 and len(viewer.layers) == n_layers
    assert viewer.layers[f"cells {PREDICTION}"] is pred
    assert all(t.box not in (skipped, first.box, s.box) for t in widget.suggestions)


def test_stack_next_moves_to_the_plane(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    stack = np.stack([blobs((64, 96), seed=s, n=8)[0] for s in range(3)])
    viewer.add_image(stack, name="stack")
    widget.settings.score.value = "random"
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert len(widget.suggestions) == 3, widget.status.text()
    qtbot.mouseClick(widget.next_button, LEFT)
    h = widget.suggestions[0]
    z = widget.items[h.image][1]
    assert int(round(viewer.dims.point[0])) == z
    box = np.asarray(viewer.layers[BOXES].data[0])
    assert box.shape == (4, 3) and np.allclose(box[:, 0], z)
    assert viewer.layers["stack labels"].data.shape == stack.shape


def test_bad_input_says_what_to_do(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert widget.status.text() == "Open an image first."
    viewer.add_image(np.zeros((48, 48), np.uint8), name="small")
    qtbot.mouseClick(widget.accept_button, LEFT)
    assert "press Suggest tiles, then Next" in widget.status.text()
    qtbot.mouseClick(widget.next_button, LEFT)
    assert "press Suggest tiles first" in widget.status.text()
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert "larger than small" in widget.status.text() and SUGGESTIONS not in viewer.layers
    # an accepted tile with background only: one sentence, and the tile stays accepted to repaint
    widget.settings.tile.value = 16
    widget.settings.score.value = "random"
    click_and_wait(qtbot, widget, widget.suggest_button)
    qtbot.mouseClick(widget.next_button, LEFT)
    click_and_wait(qtbot, widget, widget.accept_button)
    assert "hold only background" in widget.status.text()
    assert len(widget.session.accepted) == 1


def test_cancel_keeps_the_suggestions(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img, _ = blobs((128, 192), seed=9, n=20)
    viewer.add_image(img, name="cells")
    widget.settings.score.value = "random"
    click_and_wait(qtbot, widget, widget.suggest_button)
    before = list(widget.suggestions)
    widget.settings.score.value = "mc-dropout"
    widget.settings.tile.value = 16  # many tiles: a long job to cancel
    widget.settings.top.value = 5
    qtbot.mouseClick(widget.suggest_button, LEFT)
    qtbot.mouseClick(widget.cancel_button, LEFT)
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=TIMEOUT)
    assert widget.status.text() == "Cancelled; the suggestions are as they were."
    assert widget.suggestions == before and len(viewer.layers["fewcell suggestions"].data) == 3


def test_switching_the_model_keeps_the_accepted_tiles(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    img, mask = blobs((128, 128), seed=10, n=18)
    viewer.add_image(img, name="cells")
    viewer.add_labels(mask.copy(), name="cells labels")  # as if every tile were painted already
    assert widget.settings.score.value == "coverage"  # the default: a tile of each kind, no network loaded
    assert not widget.settings.network.enabled and not widget.settings.pretext.enabled  # they serve a model's score
    widget.settings.score.value = "entropy"
    assert widget.settings.network.enabled and widget.settings.score_with.enabled
    widget.settings.score.value = "coverage"
    click_and_wait(qtbot, widget, widget.suggest_button)
    session = widget.session
    assert session.params.suggest.score == "coverage" and session.tiles_prepared == 0, widget.status.text()
    qtbot.mouseClick(widget.next_button, LEFT)
    click_and_wait(qtbot, widget, widget.accept_button)
    accepted = dict(widget.session.accepted)
    assert len(accepted) == 1, widget.status.text()
    widget.settings.model.value = "prompt"  # the prompt segmenter
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert widget.session.params.model == "prompt" and widget.session.accepted.keys() == accepted.keys()
    assert isinstance(widget.session.model, tuple)  # refitted on the kept tile before scoring
    assert "Refitted on 1 accepted tile" in widget.status.text()
    qtbot.waitUntil(lambda: "prediction' updated" in widget.status.text(), timeout=TIMEOUT)
    assert dice_mean(np.asarray(viewer.layers["cells fewcell prediction"].data), mask) > 0.8


def test_new_kinds_first_is_a_choice_of_the_form(viewer_widget, qtbot):
    """The "New kinds of tile first" box (on by default) sets what the next scoring does, mid-session too."""
    viewer, widget = viewer_widget
    img, mask = blobs((128, 128), seed=11, n=18)
    viewer.add_image(img, name="cells")
    assert widget.settings.diverse.value
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert widget.session.params.suggest.diverse
    widget.settings.diverse.value = False
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert not widget.session.params.suggest.diverse and widget.list.count() == 3, widget.status.text()


def _paint_current(viewer, widget, mask):
    """Paint the truth inside the current suggestion's box in the layer Next made active, as a user would."""
    h = widget.suggestions[widget.current]
    y, x, hh, ww = h.box
    labels = viewer.layers.selection.active
    data = np.asarray(labels.data)
    if data.ndim == 3:
        z = widget.items[h.image][1]
        data[z, y : y + hh, x : x + ww] = mask[z, y : y + hh, x : x + ww]
    else:
        data[y : y + hh, x : x + ww] = mask[y : y + hh, x : x + ww]
    labels.data = data
    return labels


def test_image_closed_while_suggesting(viewer_widget, qtbot):
    """The image is closed while its tiles are scored: one sentence, no suggestions left behind, Next does nothing."""
    viewer, widget = viewer_widget
    viewer.add_image(blobs((128, 128), seed=3)[0], name="cells")
    widget.settings.score.value = "random"
    with qtbot.captureExceptions() as exc:
        qtbot.mouseClick(widget.suggest_button, LEFT)
        viewer.layers.remove("cells")  # before the job's result reaches the widget
        qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=TIMEOUT)
        told = widget.status.text()
        qtbot.mouseClick(widget.next_button, LEFT)
    assert not exc, exc
    assert told == "The image was closed while suggesting; press Suggest tiles again."
    assert widget.list.count() == 0 and SUGGESTIONS not in viewer.layers
    assert "press Suggest tiles first" in widget.status.text()
    assert len(viewer.layers) == 0
    # with an image again, suggesting works
    viewer.add_image(blobs((128, 128), seed=3)[0], name="cells")
    click_and_wait(qtbot, widget, widget.suggest_button)
    assert widget.list.count() == 3, widget.status.text()


def test_image_closed_while_refitting(viewer_widget, qtbot):
    """The image is closed while Accept refits: one sentence, the session is dropped, nothing half done."""
    viewer, widget = viewer_widget
    img, mask = blobs((128, 128), seed=4)
    viewer.add_image(img, name="cells")
    widget.settings.score.value = "random"
    click_and_wait(qtbot, widget, widget.suggest_button)
    qtbot.mouseClick(widget.next_button, LEFT)
    _paint_current(viewer, widget, mask)
    with qtbot.captureExceptions() as exc:
        qtbot.mouseClick(widget.accept_button, LEFT)
        viewer.layers.remove("cells")
        qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=TIMEOUT)
        qtbot.waitUntil(lambda: widget.background is None, timeout=TIMEOUT)
    assert not exc, exc
    assert widget.status.text() == "The image was closed while refitting; press Suggest tiles again."
    assert widget.list.count() == 0 and not any(PREDICTION in lay.name for lay in viewer.layers)
    qtbot.mouseClick(widget.next_button, LEFT)
    assert "press Suggest tiles first" in widget.status.text()


def _labels_of_other_shape(viewer):
    img, mask = blobs((128, 128), seed=5)
    viewer.add_image(img, name="cells")
    return viewer.add_labels(np.zeros((40, 40), np.uint8), name="cells labels"), mask


def _points_named_labels(viewer):
    img, mask = blobs((128, 128), seed=6)
    viewer.add_image(img, name="cells")
    return viewer.add_points(np.zeros((0, 2)), name="cells labels"), mask


def _2d_labels_for_a_stack(viewer):
    pairs = [blobs((96, 128), seed=s, n=10) for s in range(2)]
    viewer.add_image(np.stack([p[0] for p in pairs]), name="cells")
    return viewer.add_labels(np.zeros((96, 128), np.uint8), name="cells labels"), np.stack([p[1] for p in pairs])


@pytest.mark.parametrize("setup", [_labels_of_other_shape, _points_named_labels, _2d_labels_for_a_stack])
def test_accept_reads_the_layer_next_chose(viewer_widget, qtbot, setup):
    """'cells labels' is there but cannot hold the image's annotation: Next makes 'cells fewcell labels', and
    Accept takes what was painted there; the user's layer is left alone."""
    viewer, widget = viewer_widget
    theirs, mask = setup(viewer)
    before = np.array(theirs.data)
    viewer.layers.selection.active = viewer.layers["cells"]
    widget.settings.score.value = "random"
    click_and_wait(qtbot, widget, widget.suggest_button)
    qtbot.mouseClick(widget.next_button, LEFT)
    assert "in 'cells fewcell labels'" in widget.status.text()
    assert _paint_current(viewer, widget, mask).name == "cells fewcell labels"
    click_and_wait(qtbot, widget, widget.accept_button)
    assert len(widget.session.accepted) == 1 and "Refitted on 1 accepted tile" in widget.status.text()
    assert viewer.layers["cells labels"] is theirs and np.array_equal(np.asarray(theirs.data), before)
    # the next tile is painted in the same layer; if the user removes it, Accept says so
    qtbot.mouseClick(widget.next_button, LEFT)
    assert viewer.layers.selection.active is viewer.layers["cells fewcell labels"]
    viewer.layers.remove("cells fewcell labels")
    click_and_wait(qtbot, widget, widget.accept_button)
    assert "The labels layer of 'cells' was removed; press Next" in widget.status.text()
    assert len(widget.session.accepted) == 1
