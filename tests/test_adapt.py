"""Adapting prompt segmentation to the prompt: the self-check, the paths, the choice, the API, CLI and widget.

Small synthetic images and a randomly initialised tiny network (fast, and a network that cannot tell the
classes apart, so the filters must); no timed assertions.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine import FewcellError, PromptParams, Segmenter, estimate_text
from napari_fewcell.engine.core.image import intensity_range
from napari_fewcell.engine.core.progress import Progress
from napari_fewcell.engine.nets import attention
from napari_fewcell.engine.nets.unet import EmbedNet, NetConfig
from napari_fewcell.engine.prompt import ADAPT_CHOICES, generic_features
from napari_fewcell.engine.prompt.adapt import AUTO_PATHS, choose
from napari_fewcell.engine.prompt.annotated import BoxData, PromptSource, mean_dice, quadrants

from .conftest import blobs, click_and_wait, dice_mean

FAST = dict(device="cpu", finetune_steps=3, finetune_seconds=None)  # reproducible: steps, not seconds


def tiny_net(seed: int = 0) -> EmbedNet:
    torch.manual_seed(seed)
    return EmbedNet(NetConfig(base=4, embed_dim=8))


def noisy_disks(shape=(160, 160), seed=0):
    """Large disks a little brighter than the background under heavy noise: a pixel's neighbourhood says
    little, a smoothed image (the filters at σ 4–16) says a lot."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, np.uint8)
    for _ in range(7):
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.uniform(14, 26)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
    img = 100 + 25 * mask + rng.normal(0, 40, shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def balanced_box(mask, size=64):
    """The box whose foreground share is closest to 40 %."""
    spots = [(y, x) for y in range(0, mask.shape[0] - size + 1, 8) for x in range(0, mask.shape[1] - size + 1, 8)]
    y, x = min(spots, key=lambda s: abs(mask[s[0] : s[0] + size, s[1] : s[1] + size].mean() - 0.4))
    return y, x, size, size


@pytest.fixture(scope="module")
def case():
    img, mask = noisy_disks()
    return img, mask, balanced_box(mask)


# ---- the self-check -------------------------------------------------------------------------
def test_self_check_gives_a_dice_in_0_1_for_every_path(case):
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="auto", **FAST), model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    seg.adapt(prompt)
    assert set(prompt.check) == set(AUTO_PATHS)  # auto chooses between the paths whose check is trusted
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in prompt.check.values())
    assert prompt.path in AUTO_PATHS and prompt.path == choose(prompt.check)
    assert estimate_text(prompt.path, prompt.check).startswith("Self-check inside your box: Dice ≈ 0.")
    tuned = Segmenter(PromptParams(adapt="finetune", **FAST), model=tiny_net())
    prompt = tuned.prepare_prompt(img, mask, box)
    tuned.adapt(prompt)
    assert set(prompt.check) == {"none", "finetune"} and prompt.path == "finetune"
    assert all(0.0 <= v <= 1.0 for v in prompt.check.values())


def test_the_estimate_is_the_held_out_dice_less_the_measured_optimism(case, monkeypatch):
    """Every path's estimate is its held-out Dice less adapt.CHECK_BIAS (clipped at 0), so the choice between
    paths is the one their held-out Dice makes."""
    from napari_fewcell.engine.prompt import adapt

    img, mask, box = case
    held_out = {"none": 0.90, "fuse": 0.02}
    calls = iter(["none", "fuse"])  # self_check scores attention first, then the fused path
    monkeypatch.setattr(BoxData, "score", lambda self, pred: held_out[next(calls)])
    seg = Segmenter(PromptParams(adapt="auto", **FAST), model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    seg.adapt(prompt)
    assert 0.0 < adapt.CHECK_BIAS < 0.2
    assert prompt.check == {"none": pytest.approx(0.90 - adapt.CHECK_BIAS), "fuse": 0.0}
    assert prompt.path == "none"


def test_the_self_check_forests_have_their_own_number_of_trees(case, monkeypatch):
    """The self-check's forests only estimate: PromptParams.check_trees of them, fewer than the forest that
    segments (PromptParams.trees); they are the first trees of a forest of ``trees`` with the same seed."""
    from napari_fewcell.engine.prompt import adapt

    img, mask, box = case
    sizes, fit = [], adapt.fit_forest
    monkeypatch.setattr(adapt, "fit_forest", lambda trees, x, y, *a: sizes.append(trees) or fit(trees, x, y, *a))
    seg = Segmenter(PromptParams(adapt="fuse", trees=12, check_trees=3, **FAST), model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    ad = seg.adapt(prompt)
    assert sizes == [3, 3, 3, 3, 12] and len(ad.forest.estimators_) == 12
    assert PromptParams().check_trees < PromptParams().trees
    with pytest.raises(FewcellError, match="at least one tree"):
        PromptParams(check_trees=0).check()


def _box_data(y: np.ndarray, h: int, w: int) -> BoxData:
    """BoxData of one h×w box with classes ``y`` (row major) and no embedding to speak of."""
    return BoxData(torch.zeros(len(y), 1), y, PromptSource(np.zeros((3, h, w), np.float32), (0, 0), (h, w)), 0.1)


def test_self_check_scores_the_held_out_pixels_together():
    quad = quadrants(4, 4)
    assert np.bincount(quad).tolist() == [4, 4, 4, 4]
    truth = np.zeros(16, int)
    truth[quad == 0] = [0, 1, 0, 1]
    truth[quad == 3] = [0, 0, 0, 1]
    box = _box_data(truth, 4, 4)
    assert box.fair.all()
    assert box.score(truth.copy()) == 1.0
    wrong = truth.copy()
    wrong[quad == 1] = 1  # a mistake in a quadrant of one class counts, as it would on a whole image
    assert box.score(wrong) == pytest.approx(mean_dice(wrong, truth)) and box.score(wrong) < 1.0
    edge = truth.copy()
    edge[np.flatnonzero(truth == 1)[-1]] = 0  # one missed pixel of the sparse class: the box's Dice, not a
    pooled = mean_dice(edge, truth)  # quadrant's (which would be 0 for class 1 in quadrant 3)
    assert box.score(edge) == pytest.approx(pooled) and pooled > 0.8
    assert mean_dice(np.zeros(4), np.zeros(4)) is None


def test_choice_prefers_the_cheaper_path_on_ties():
    assert choose({"none": 0.80, "fuse": 0.80, "finetune": 0.80}) == "none"
    assert choose({"none": 0.70, "forest": 0.85, "fuse": 0.852}) == "forest"
    assert choose({"none": 0.70, "forest": 0.80, "fuse": 0.85}) == "fuse"
    assert choose({"none": 0.70, "fuse": 0.88, "finetune": 0.852}) == "fuse"  # 0.85 after its handicap: a tie
    assert choose({"none": 0.90, "fuse": 0.92}) == "none"  # the fused path must beat attention by the handicap
    assert choose({"none": 0.80, "fuse": 0.84}) == "fuse"
    assert choose({"none": 0.90, "fuse": 0.92}, handicap={}) == "fuse"  # a handicap given replaces the default
    assert choose({"none": 0.70, "fuse": 0.75, "finetune": 0.90}) == "finetune"


def test_the_forest_path_runs_no_network(case):
    """adapt="forest" is the classic pixel classifier: after the prompt is embedded once (for the check of
    "none" it is compared with), segmenting an image never calls the network."""
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="forest", **FAST), model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    seg.adapt(prompt)
    assert prompt.path == "forest" and set(prompt.check) == {"none", "forest"}

    def refuse(*a, **k):
        raise AssertionError("the forest path ran the network")

    seg.model.forward = refuse
    out = seg.segment(img, prompt)
    assert dice_mean(out, mask) > 0.7


# ---- auto picks the better path -------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auto_picks_the_filters_where_the_network_cannot_separate_the_classes(seed):
    img, mask = noisy_disks(seed=seed)
    box = balanced_box(mask)
    net = tiny_net()
    plain = Segmenter(PromptParams(adapt="none", **FAST), model=net)
    auto = Segmenter(PromptParams(adapt="auto", **FAST), model=net)
    prompt = auto.prepare_prompt(img, mask, box)
    out = auto.segment(img, prompt)
    assert prompt.path in ("forest", "fuse"), prompt.check  # the two filter paths (a tie goes to the forest)
    assert prompt.check[prompt.path] > prompt.check["none"] + 0.2
    other, other_mask = noisy_disks(seed=seed + 10)
    assert dice_mean(out, mask) > dice_mean(plain.segment(img, prompt), mask) + 0.2
    assert dice_mean(auto.segment(other, prompt), other_mask) > dice_mean(plain.segment(other, prompt), other_mask)


def test_fused_tiles_agree_with_the_whole_image(case):
    img, mask, box = case
    net = tiny_net()
    whole = Segmenter(PromptParams(adapt="fuse", **FAST), model=net)
    tiled = Segmenter(PromptParams(adapt="fuse", tile=64, **FAST), model=net)
    prompt = whole.prepare_prompt(img, mask, box)
    assert (whole.segment(img, prompt) == tiled.segment(img, prompt)).mean() > 0.99
    feats = generic_features(img, tile=64)
    assert feats.shape[:2] == img.shape and np.allclose(feats, generic_features(img), atol=1e-4)


# ---- "none" is today's path -----------------------------------------------------------------
def test_none_is_attention_only_exactly(case):
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="none", device="cpu"), model=tiny_net(3))
    prompt = seg.prepare_prompt(img, mask, box)
    out = seg.segment(img, prompt)
    assert prompt.path == "none" and prompt.check == {}
    # by hand, as before adaptation existed: one tile, prototype keys, attention, arg-max
    arr = img[..., None]
    emb = seg.embed(arr, intensity_range(arr), slice(None), slice(None))
    y, x, h, w = box
    box_emb = emb[:, y : y + h, x : x + w].reshape(emb.shape[0], -1).T
    keys = attention.prototype_keys(box_emb, mask[y : y + h, x : x + w].reshape(-1), 64)
    probs = attention.attend(emb.reshape(emb.shape[0], -1).T.float(), keys, seg.tau)
    expected = keys.classes[probs.argmax(1).numpy()].reshape(img.shape)
    np.testing.assert_array_equal(out, expected)


def test_prompt_of_several_boxes_is_not_adapted_under_auto(case):
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="auto", **FAST), model=tiny_net())
    prompt = seg.prompt_from_boxes([(img[..., None], mask, [box])])
    seg.segment(img, prompt)
    assert prompt.path == "none" and prompt.check == {}
    with pytest.raises(FewcellError, match="needs a prompt made by prepare_prompt"):
        Segmenter(PromptParams(adapt="fuse", **FAST), model=seg.model).segment(img, prompt)


# ---- fine-tuning ----------------------------------------------------------------------------
def test_finetune_never_touches_the_shared_network(case):
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="finetune", finetune_lr=1e-2, **FAST), model=tiny_net())
    before = {k: v.clone() for k, v in seg.model.state_dict().items()}
    prompt = seg.prepare_prompt(img, mask, box)
    out = seg.segment(img, prompt)
    assert out.shape == img.shape and prompt.path == "finetune" and set(prompt.check) == {"none", "finetune"}
    for k, v in seg.model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert all(not p.requires_grad or p.grad is None for p in seg.model.parameters())
    tuned = seg.adapt(prompt).model
    assert tuned is not seg.model
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), before.values()))


def test_adaptation_runs_once_per_prompt_and_reports_progress(case):
    img, mask, box = case
    seg = Segmenter(PromptParams(adapt="auto", **FAST), model=tiny_net())
    prompt = seg.prepare_prompt(img, mask, box)
    steps = []
    seg.segment(img, prompt, steps.append)
    messages = {p.message for p in steps}
    assert {"checking the prompt", "checking the fused path", "segmenting"} <= messages
    assert all(isinstance(p, Progress) for p in steps)
    again = []
    seg.segment(img, prompt, again.append)
    assert {p.message for p in again} == {"segmenting"}  # the adaptation is cached on the prompt


def test_bad_adapt_value_is_one_sentence():
    sentence = r"^Unknown adaptation 'fast': choose one of auto, none, forest, fuse, finetune\.$"
    with pytest.raises(FewcellError, match=sentence):
        PromptParams(adapt="fast").check()
    assert PromptParams().adapt in ADAPT_CHOICES


# ---- command line ---------------------------------------------------------------------------
def _cli_args(tmp_path, *extra):
    img, mask = blobs((120, 130), seed=7)
    tifffile.imwrite(tmp_path / "a.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", mask)
    return ["segment", str(tmp_path / "a.tif"), "--prompt-image", str(tmp_path / "a.tif"), "--prompt-labels",
            str(tmp_path / "lab.tif"), "--box", "8", "52", "64", "64", "--out", str(tmp_path / "o"),
            "--device", "cpu", *extra]  # a box with 17 % blobs (under 10 % no figure would be shown)


@pytest.mark.parametrize("adapt", ["fuse", "none"])
def test_cli_adapt_option(tmp_path, capsys, adapt):
    assert main(_cli_args(tmp_path, "--adapt", adapt)) == 0
    err = capsys.readouterr().err
    assert tifffile.imread(tmp_path / "o" / "a.tif").shape == (120, 130)
    if adapt == "fuse":
        assert err.count("Self-check inside your box: Dice ≈") == 1 and "(fused with filters)" in err
        assert "the whole image may differ" in err and "add a box" in err.lower()  # one box: another one helps
    else:
        assert "Self-check" not in err


def test_fused_forest_can_read_the_embedding(tmp_path, capsys):
    """PromptParams.fuse_embedding / --fuse-embedding: the fused forest reads the attention probability, the filters
    and the D embedding features; the labels are written and differ little from the plain fused path's."""
    img, mask = blobs((120, 130), seed=7)
    results, features = {}, {}
    for flag in (False, True):
        seg = Segmenter(PromptParams(adapt="fuse", fuse_embedding=flag, **FAST), model=tiny_net())
        prompt = seg.prepare_prompt(img, mask, (30, 40, 64, 64))
        results[flag] = seg.segment(img, prompt)
        ad = seg.adapted(prompt)
        assert ad.embedding is flag and prompt.path == "fuse"
        features[flag] = ad.forest.n_features_in_
    assert features[True] == features[False] + seg.model.config.embed_dim
    assert (results[True] == results[False]).mean() > 0.8
    assert main(_cli_args(tmp_path, "--adapt", "fuse", "--fuse-embedding")) == 0
    assert tifffile.imread(tmp_path / "o" / "a.tif").shape == (120, 130)


def test_cli_bad_adapt_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_cli_args(tmp_path, "--adapt", "fast"))
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("fewcell") and "invalid choice: 'fast'" in last and "Traceback" not in last
    assert not (tmp_path / "o").exists()


# ---- widget ---------------------------------------------------------------------------------
def test_widget_shows_the_estimate(make_napari_viewer, qtbot):
    from napari_fewcell._qt.prompt_widget import PromptSegmentationWidget

    from .test_widget import blobs as gray_blobs
    from .test_widget import paint_disk_in_box

    viewer = make_napari_viewer()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    assert widget.settings.adapt.value == PromptParams().adapt
    assert list(widget.settings.adapt.choices) == list(ADAPT_CHOICES)
    viewer.add_image(gray_blobs(128, 140), name="cells")
    widget.add_box_button.click()
    paint_disk_in_box(viewer, viewer.layers["cells prompt labels"])
    widget.settings.adapt.value = "fuse"
    click_and_wait(qtbot, widget, widget.segment_button)
    assert "cells fewcell" in viewer.layers, widget.status.text()
    text = widget.status.text()
    assert "Self-check inside your box: Dice ≈ " in text and "(fused with filters)" in text, text
    assert "the whole image may differ" in text, text


def test_estimate_sentence_says_what_it_is_and_when_to_add_a_box():
    """Issue 20 item 4 / issue 22 item 6: the number is the box's, the whole image may differ by the measured error;
    one box asks for another box; a sparse class gets no number (it is unreliable) and asks for another box; several
    boxes are 'your boxes'."""
    from napari_fewcell.engine.prompt.estimate import CHECK_ERROR, estimate_shown

    check = {"none": 0.71, "fuse": 0.9}
    one = estimate_text("fuse", check, 1, np.array([0] * 700 + [1] * 300))
    assert one.startswith("Self-check inside your box: Dice ≈ 0.90 (fused with filters)")
    assert f"by {CHECK_ERROR['mean']:.2f} on average, up to {CHECK_ERROR['max']:.2f}" in one
    assert one.endswith("Add a box elsewhere in the image for a surer result")
    three = estimate_text("none", check, 3, np.array([0] * 700 + [1] * 300))
    assert three.startswith("Self-check inside your boxes: Dice ≈ 0.71") and "Add a box" not in three
    sparse = estimate_text("fuse", check, 3, np.array([0] * 950 + [1] * 50))
    assert sparse.startswith("No self-check figure: a class covers only 5% of your boxes") and "0.9" not in sparse
    assert sparse.endswith("(fused with filters was used). Add a box where it is common for a checked result")
    assert estimate_shown("fuse", check, np.array([0] * 950 + [1] * 50)) is None
    assert estimate_shown("fuse", check, np.array([0] * 700 + [1] * 300)) == 0.9
    assert estimate_text("fuse", None) == "" and estimate_text(None, check) == ""


def test_the_self_check_buffer_keeps_neighbours_of_the_held_out_quarter_out_of_training():
    src = PromptSource(np.zeros((3, 8, 8), np.float32), (0, 0), (8, 8))
    y = np.zeros(64, np.int64)
    plain = BoxData(torch.zeros(64, 4), y, src, 0.1)
    assert np.array_equal(plain.train_mask(0), plain.quad != 0)  # no buffer: the other three quarters
    wide = BoxData(torch.zeros(64, 4), y, src, 0.1, buffer=2)
    mask = wide.train_mask(0).reshape(8, 8)  # quarter 0 = rows 0-3, cols 0-3; the band reaches row/col 5
    assert not mask[:6, :6].any() and mask[6:, :].all() and mask[:, 6:].all()
    huge = BoxData(torch.zeros(64, 4), y, src, 0.1, buffer=100)  # wider than the box: no buffer
    assert np.array_equal(huge.train_mask(3), huge.quad != 3)
    with pytest.raises(FewcellError, match="buffer"):
        PromptParams(check_buffer=-1).check()


def test_a_forest_learns_from_a_proportional_sample_of_many_pixels():
    """Many boxes (a partial-labels run's 15): the forest fits (and the self-check attends) on a seeded sample of
    SAMPLE_PIXELS, every class in proportion and never fewer than SAMPLE_CLASS_MIN of one; few are all kept."""
    from napari_fewcell.engine.prompt.filters import SAMPLE_CLASS_MIN, SAMPLE_PIXELS, fit_forest, pixel_sample

    y = np.r_[np.zeros(60_000, int), np.ones(500, int), np.full(100, 2)]
    i = pixel_sample(y)
    counts = np.bincount(y[i])
    assert abs(len(i) - SAMPLE_PIXELS) < SAMPLE_CLASS_MIN * 2 and np.all(np.diff(i) > 0)
    assert counts[2] == 100 and counts[1] == SAMPLE_CLASS_MIN and counts[0] > 15_000
    assert np.array_equal(i, pixel_sample(y)) and np.array_equal(pixel_sample(y[:5000]), np.arange(5000))
    x = np.c_[y + np.random.default_rng(1).normal(0, 0.1, len(y))]
    forest = fit_forest(5, x, y)
    assert list(forest.classes_) == [0, 1, 2] and (forest.predict(x[::97]) == y[::97]).mean() > 0.99


def test_the_final_forest_learns_from_more_pixels_than_the_checks(monkeypatch):
    """A prompt of many boxes (a partial-labels run's): the self-check's forests, fitted once per held-out group,
    learn from a sample of SAMPLE_PIXELS; the final forest, fitted once, from up to FIT_PIXELS."""
    from napari_fewcell.engine.prompt import adapt
    from napari_fewcell.engine.prompt.filters import FIT_PIXELS, SAMPLE_PIXELS

    img, mask = noisy_disks(shape=(192, 128), seed=3)
    boxes = [(y, x, 64, 64) for y in (0, 64, 128) for x in (0, 64)][:5]  # 5 boxes: 20,480 labelled pixels
    seg = Segmenter(PromptParams(adapt="fuse", **FAST), model=tiny_net())
    prompt = seg.prepare_prompt_boxes(img, mask, boxes)
    fitted = []
    plain = adapt.fit_forest

    def spy(trees, x, y, *cap):
        forest = plain(trees, x, y, *cap)
        fitted.append(forest.estimators_[0].tree_.weighted_n_node_samples[0])  # bootstrap draws = pixels fitted
        return forest

    monkeypatch.setattr(adapt, "fit_forest", spy)
    final = seg.adapt(prompt).forest
    assert final.estimators_[0].tree_.weighted_n_node_samples[0] == 5 * 64 * 64 <= FIT_PIXELS
    assert len(fitted) > 1 and max(fitted[:-1]) <= SAMPLE_PIXELS + 512  # the check's fits: sampled
