"""Issue 22 item 2: a colour prompt with a gray image, or the reverse, is segmented in gray (luminance), with one
sentence saying so (benchmarks/results/colour.md: +8.8 Dice over keeping the colour), in the engine, the CLI
and the widget."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_fewcell.cli import main
from napari_fewcell.engine import FewcellError
from napari_fewcell.engine.core.image import is_colour, luminance
from napari_fewcell.engine.core.lazy import LazyImage, LuminanceImage
from napari_fewcell.engine.prompt import PromptParams, Segmenter, colour_plan

from .conftest import blobs

BOX = (32, 32, 64, 64)


def tinted(gray: np.ndarray, seed: int = 0) -> np.ndarray:
    """A colour image from a gray one: stain-like channels that are not equal (as H&E's are not)."""
    rng = np.random.default_rng(seed)
    g = gray.astype(np.float32)
    return np.stack([255 - 0.6 * g, 230 - 0.9 * g + rng.normal(0, 3, g.shape), 240 - 0.4 * g], -1).clip(0, 255
                                                                                                      ).astype(np.uint8)


def test_colour_is_told_from_gray_stored_as_rgb():
    gray, _ = blobs()
    assert not is_colour(gray) and not is_colour(np.stack([gray] * 3, -1)) and is_colour(tinted(gray))
    assert not is_colour(np.stack([gray] * 4))  # a stack: by its first plane
    assert LazyImage(tinted(gray)).is_colour() and not LuminanceImage(LazyImage(tinted(gray))).is_colour()
    lum = LuminanceImage(LazyImage(tinted(gray))).read(slice(0, 10), slice(0, 20))
    assert lum.shape == (10, 20, 1) and np.allclose(lum, luminance(tinted(gray)[:10, :20]))


def test_colour_plan_says_what_is_done():
    assert colour_plan(True, [True, True], ["a.tif", "b.tif"]) == (False, None)
    flag, text = colour_plan(True, [True, False], ["a.tif", "b.tif"])
    assert flag and text.startswith("the prompt image is colour but 1 of the 2 images (b.tif) are gray")
    flag, text = colour_plan(False, [True], ["he.tif"])
    assert flag and "the image (he.tif) is colour" in text and "read as gray (their luminance)" in text


@pytest.fixture(scope="module")
def seg():
    return Segmenter(PromptParams(device="cpu", adapt="none"))


def test_gray_prompt_colour_image_is_read_as_its_luminance(seg):
    """The engine converts a colour image when the prompt is gray: the labels of its luminance, not of RGB."""
    gray, mask = blobs(seed=1)
    prompt = seg.prepare_prompt(gray, mask, BOX)
    assert not prompt.colour
    colour = tinted(blobs(seed=2)[0])
    out = seg.segment(colour, prompt)
    assert np.array_equal(out, seg.segment(luminance(colour)[..., 0], prompt))
    plain = Segmenter(PromptParams(device="cpu", adapt="none"), model=seg.model)
    rgb = plain.segment(np.stack([luminance(colour)[..., 0]] * 3, -1).astype(np.float32), prompt)
    assert np.array_equal(out, rgb)  # gray stored as RGB reads as gray too


def test_colour_prompt_gray_image_is_refused_unless_luminance(seg):
    colour, mask = tinted(blobs(seed=3)[0]), blobs(seed=3)[1]
    target = blobs(seed=4)[0]
    prompt = seg.prepare_prompt(colour, mask, BOX)
    assert prompt.colour
    with pytest.raises(FewcellError, match=r"luminance=True"):
        seg.segment(target, prompt)
    lum = Segmenter(PromptParams(device="cpu", adapt="none", luminance=True), model=seg.model)
    p = lum.prepare_prompt(colour, mask, BOX)
    assert not p.colour
    expected = lum.segment(target, lum.prepare_prompt(luminance(colour)[..., 0], mask, BOX))
    assert np.array_equal(lum.segment(target, p), expected)


def test_cli_says_it_reads_gray_and_matches_the_gray_run(tmp_path, capsys):
    colour, mask = tinted(blobs(seed=5)[0]), blobs(seed=5)[1]
    tifffile.imwrite(tmp_path / "p.tif", colour)
    tifffile.imwrite(tmp_path / "pg.tif", luminance(colour)[..., 0])
    tifffile.imwrite(tmp_path / "m.tif", mask)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "g.tif", blobs(seed=6)[0])
    args = ["segment", str(tmp_path / "in"), "--prompt-labels", str(tmp_path / "m.tif"), "--box", *map(str, BOX),
            "--adapt", "none", "--device", "cpu"]
    assert main([*args, "--prompt-image", str(tmp_path / "p.tif"), "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.count("read as gray") == 1 and "Traceback" not in err, err
    assert main([*args, "--prompt-image", str(tmp_path / "pg.tif"), "--out", str(tmp_path / "b")]) == 0
    assert "read as gray" not in capsys.readouterr().err
    a, b = (tifffile.imread(tmp_path / d / "g.tif") for d in ("a", "b"))
    assert np.array_equal(a, b)


def test_widget_segments_a_gray_image_from_a_colour_prompt(viewer_widget, qtbot):
    from .test_widget import click_and_wait

    viewer, widget = viewer_widget
    colour, mask = tinted(blobs(seed=7)[0]), blobs(seed=7)[1]
    viewer.add_image(blobs(seed=8)[0], name="gray")
    viewer.add_image(colour, name="stained", rgb=True)
    viewer.add_labels(mask, name="stained labels")
    viewer.add_shapes([np.array([[32, 32], [96, 96]])], shape_type="rectangle", name="boxes")
    widget.image_combo.pick("gray")
    widget.prompt_image_combo.pick("stained")
    widget.labels_combo.pick("stained labels")
    widget.shapes_combo.pick("boxes")
    widget.settings.adapt.value = "none"
    click_and_wait(qtbot, widget)
    assert "gray fewcell" in viewer.layers, widget.status.text()
    assert "The prompt image is colour but the image (gray) is gray" in widget.status.text()


def test_api_segment_reads_a_colour_prompt_and_a_gray_image_as_gray():
    from napari_fewcell.engine.prompt import segment

    colour, mask = tinted(blobs(seed=9)[0]), blobs(seed=9)[1]
    target, params = blobs(seed=10)[0], PromptParams(device="cpu", adapt="none")
    out = segment(target, colour, mask, BOX, params)
    assert np.array_equal(out, segment(target, luminance(colour)[..., 0], mask, BOX, params))
    assert not params.luminance  # the caller's parameters are not changed
