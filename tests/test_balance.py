"""PromptParams.balance: attention's keys weighted per class, so that a thin class is not outvoted."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine import FewcellError, PromptParams, Segmenter
from napari_fewcell.engine.prompt import adapt, annotated

from .test_adapt import FAST, tiny_net


def thin_lines(shape=(128, 128), seed=0, rows=16, cols=20):
    """Thin bright lines (about 10 % of the pixels at the default spacing) on a noisy background."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    mask[::rows, :] = 1
    mask[:, 5::cols] = 1
    img = 90 + 60 * mask + rng.normal(0, 25, shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def labels(balance: float, adapt: str, img, mask, box=(32, 32, 64, 64)):
    seg = Segmenter(PromptParams(adapt=adapt, balance=balance, attention="exact", trees=8, check_trees=3, **FAST),
                    model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    return seg.segment(img, prompt), prompt


def test_balanced_attention_finds_more_of_a_thin_class():
    img, mask = thin_lines()
    plain, _ = labels(0.0, "none", img, mask)
    fair, prompt = labels(1.0, "none", img, mask)
    assert (fair == 1).sum() > (plain == 1).sum()
    assert Segmenter(PromptParams(balance=1.0), model=tiny_net()).provenance(prompt)["balance"] == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_balance_outside_0_1_gets_one_sentence(bad):
    with pytest.raises(FewcellError, match="from 0 to 1"):
        PromptParams(balance=bad).check()


@pytest.mark.parametrize("option, adapt, value, bad, says", [
    ("balance", "none", 1.0, "2", "attention's class balance is a number from 0 to 1"),
    ("forest_balance", "forest", 0.5, "-1", "forests' class balance is a number from 0 to 1"),
])
def test_segment_command_takes_a_balance_and_records_it(sample, tmp_path, capsys, option, adapt, value, bad, says):
    from napari_fewcell.cli import main
    from napari_fewcell.engine.core.files import read_labels_meta

    from .test_cli import _args

    flag = "--" + option.replace("_", "-")
    assert main(_args(sample, tmp_path / "out", "--device", "cpu", "--adapt", adapt, flag, str(value))) == 0
    meta = read_labels_meta(tmp_path / "out" / "nuclei.tif")
    assert meta[option] == value and meta["adapt_path"] == adapt
    assert main(_args(sample, tmp_path / "bad", flag, bad)) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def forest_labels(forest_balance: float, adapt: str, img, mask, box=(32, 32, 64, 64)):
    seg = Segmenter(PromptParams(adapt=adapt, forest_balance=forest_balance, trees=8, check_trees=3, **FAST),
                    model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    return seg.segment(img, prompt), seg.provenance(prompt)


@pytest.mark.parametrize("adapt", ["forest", "fuse"])
def test_balanced_forests_keep_every_thin_pixel_and_find_more(adapt):
    img, mask = thin_lines(seed=1)
    plain, meta = forest_labels(0.0, adapt, img, mask)
    fair, fair_meta = forest_labels(1.0, adapt, img, mask)
    assert meta["adapt_path"] == fair_meta["adapt_path"] == adapt and fair_meta["forest_balance"] == 1.0
    # two classes: weighing the thin class up moves every pixel's odds one way, so nothing thin is lost
    assert np.all(fair[plain == 1] == 1)
    assert (fair == 1).sum() > (plain == 1).sum()


def test_forest_balance_leaves_attention_alone_as_it_is():
    img, mask = thin_lines()
    plain, _ = forest_labels(0.0, "none", img, mask)
    fair, _ = forest_labels(1.0, "none", img, mask)
    assert np.array_equal(plain, fair)



def sparse_labels(img, mask, box=(32, 32, 64, 64), corrections=None, **kw):
    seg = Segmenter(PromptParams(trees=8, check_trees=3, attention="exact", **FAST, **kw), model=tiny_net())
    prompt = seg.prepare_prompt_boxes(img, mask, [box], corrections=corrections)
    return seg.segment(img, prompt), seg.provenance(prompt)


def test_auto_takes_balanced_attention_for_a_box_with_a_sparse_class():
    img, mask = thin_lines(rows=32, cols=40)
    assert annotated.sparse_share(mask[32:96, 32:96].ravel()) < adapt.SPARSE  # the lines: about 6 % of the box
    got, meta = sparse_labels(img, mask, adapt="auto", sparse_balance=1.0)
    want, _ = sparse_labels(img, mask, adapt="none", balance=1.0)
    assert meta["adapt_path"] == "none" and meta["sparse_balance"] == 1.0
    assert np.array_equal(got, want)


def test_a_stroke_never_lifts_a_sparse_box_out_of_the_rule():
    img, mask = thin_lines(rows=32, cols=40)
    corr = np.full(mask.shape, -1, np.int32)
    for y, x in [(0, 0), (0, 118), (118, 0), (118, 118)]:  # four strokes of the thin class, far from the box and
        corr[y : y + 10, x : x + 10] = 1  # each other: with them the thin class is over 10 % of the prompt
    assert mask[32:96, 32:96].sum() + (corr == 1).sum() > 0.12 * (64 * 64 + (corr == 1).sum())
    got, meta = sparse_labels(img, mask, corrections=corr, adapt="auto")
    want, _ = sparse_labels(img, mask, corrections=corr, adapt="none", balance=1.0)
    assert meta["adapt_path"] == "none" and set(meta["check"]) == {"none"}  # the forests' checks are not made
    assert np.array_equal(got, want)


def test_sparse_balance_leaves_a_box_of_common_classes_to_the_check():
    rng = np.random.default_rng(0)
    mask = np.zeros((128, 128), np.uint8)
    mask[:, 64:] = 1  # half and half
    img = np.clip(90 + 60 * mask + rng.normal(0, 25, mask.shape), 0, 255).astype(np.uint8)
    plain, meta = sparse_labels(img, mask, adapt="auto")
    same, same_meta = sparse_labels(img, mask, adapt="auto", sparse_balance=1.0)
    assert meta["adapt_path"] == same_meta["adapt_path"] and np.array_equal(plain, same)


def test_a_sparse_balance_outside_0_1_gets_one_sentence():
    with pytest.raises(FewcellError, match="sparse boxes' class balance is a number from 0 to 1"):
        PromptParams(sparse_balance=1.5).check()


def test_the_cli_shows_no_figure_for_a_sparse_box(tmp_path, capsys):
    """A user's box where the lines cover 6 %: the estimate is unreliable there, so stderr says why and asks for a
    box where the class is common, with no number."""
    import tifffile

    from napari_fewcell.cli import main

    img, mask = thin_lines(rows=32, cols=40)
    tifffile.imwrite(tmp_path / "a.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", mask)
    assert main(["segment", str(tmp_path / "a.tif"), "--prompt-image", str(tmp_path / "a.tif"), "--prompt-labels",
                 str(tmp_path / "lab.tif"), "--box", "32", "32", "64", "64", "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "No self-check figure: a class covers only 6% of your box" in err, err
    assert "Dice ≈" not in err and "Every path's self-check" not in err, err
    assert tifffile.imread(tmp_path / "o" / "a.tif").shape == img.shape
