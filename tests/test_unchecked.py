"""A prompt the self-check cannot score: a class that lies in one quadrant of the box only (issue 20 item 4).

No other quadrant holds that class, so no path can predict it where it is held out, and every path used to get the
same low estimate (a TEM box with its background in one corner: 0.40 for every path, 0.75–0.79 on the images).
Now there is no estimate, *auto* takes attention alone (as a tie did), and the user is told why and what to do.
"""
from __future__ import annotations

import numpy as np
import tifffile
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine import PromptParams, Segmenter, estimate_text
from napari_fewcell.engine.nets.unet import EmbedNet, NetConfig
from napari_fewcell.engine.prompt.adapt import UNCHECKED, choose
from napari_fewcell.engine.prompt.annotated import BoxData, PromptSource

BOX = (36, 36, 64, 64)


def square_in_one_corner(seed: int = 0):
    """A noisy image with one bright square that lies in the top-left quadrant of BOX only."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((128, 140), np.uint8)
    mask[40:58, 42:60] = 1  # rows/cols 4–21 / 6–23 of the box: its quadrant 0
    img = np.clip(80 + 90 * mask + rng.normal(0, 8, mask.shape), 0, 255).astype(np.uint8)
    return img, mask


def box_data(y: np.ndarray) -> BoxData:
    return BoxData(torch.zeros(64, 4), y, PromptSource(np.zeros((3, 8, 8), np.float32), (0, 0), (8, 8)), 0.1)


def test_a_class_in_one_quadrant_only_leaves_nothing_to_score():
    y = np.zeros((8, 8), np.int64)
    y[1:3, 1:3] = 1  # quadrant 0 only
    lone = box_data(y.reshape(-1))
    assert set(np.unique(lone.quad[lone.fair])) == {1, 2, 3}  # the class's quadrant is not scored ...
    assert lone.score(y.reshape(-1)) is None  # ... and the others hold the background only: nothing to score
    y[5:7, 5:7] = 1  # quadrant 3 too: each of them learns the class from the other
    both = box_data(y.reshape(-1))
    assert both.fair.all() and both.score(y.reshape(-1)) == 1.0
    y[1:3, 5:7] = 2  # a third class in quadrant 1 only: that quadrant is not scored, the others are
    three = box_data(y.reshape(-1))
    assert set(np.unique(three.quad[three.fair])) == {0, 2, 3}
    assert three.score(np.zeros(64, np.int64)) < 1.0  # a wrong prediction of the scored quadrants still counts


def test_auto_takes_attention_alone_and_says_there_is_no_check():
    img, mask = square_in_one_corner()
    torch.manual_seed(0)
    seg = Segmenter(PromptParams(adapt="auto", device="cpu"), model=EmbedNet(NetConfig(base=4, embed_dim=8)))
    prompt = seg.prepare_prompt(img, mask, BOX)
    labels = seg.segment(img, prompt)
    assert prompt.path == UNCHECKED == choose({}) == "none" and prompt.check == {}
    assert labels.shape == img.shape and set(np.unique(labels)) <= {0, 1}
    assert prompt.unchecked and seg.provenance(prompt)["unchecked"] is True
    text = estimate_text(prompt.path, prompt.check, 1, prompt.labels, prompt.unchecked)
    assert text.startswith("No self-check: a class of your box lies in one corner only") and "Add a box" in text
    assert "(prompt attention only was used)" in text
    assert "lies in one box only" in estimate_text("fuse", {}, 3, unchecked=True)
    assert "(fused with filters was used)" in estimate_text("fuse", {}, 1, unchecked=True)
    assert estimate_text("none", {}) == ""  # adapt="none" (never checked): nothing to say


def test_the_cli_tells_the_user(tmp_path, capsys):
    img, mask = square_in_one_corner(1)
    tifffile.imwrite(tmp_path / "a.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", mask)
    args = [str(tmp_path / "a.tif"), "--prompt-image", str(tmp_path / "a.tif"), "--prompt-labels",
            str(tmp_path / "lab.tif"),
            "--box", *map(str, BOX), "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(["segment", *args]) == 0
    err = capsys.readouterr().err
    assert "No self-check: a class of your box lies in one corner only" in err and "Self-check inside" not in err
    assert tifffile.imread(tmp_path / "o" / "a.tif").shape == img.shape


def test_the_widget_tells_the_user(make_napari_viewer, qtbot):
    """A user paints one small cell in a corner of the box and clicks Segment: the status says there is no check."""
    from napari_fewcell._qt.prompt_widget import PromptSegmentationWidget

    from .conftest import click_and_wait
    from .test_widget import BOX_LAYER

    viewer = make_napari_viewer()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    viewer.add_image(square_in_one_corner(2)[0], name="cells")
    widget.add_box_button.click()
    rect = np.asarray(viewer.layers[BOX_LAYER].data[-1])[:, -2:]
    y0, x0 = rect.min(0).astype(int)
    labels = viewer.layers["cells prompt labels"]
    labels.data[y0 + 4 : y0 + 16, x0 + 4 : x0 + 16] = 1  # the top-left corner of the box only
    labels.refresh()
    click_and_wait(qtbot, widget, widget.segment_button)
    assert "cells fewcell" in viewer.layers, widget.status.text()
    assert "No self-check: a class of your box lies in one corner only" in widget.status.text()
