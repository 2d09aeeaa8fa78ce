"""Workflow 4 engine: augmentations, scores, tiles, pretext task (no Qt)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_fewcell.engine import suggest as sg
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.geometry import overlaps, tile_boxes
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.suggest import pretext

from .conftest import blobs


def _t(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W[, C]) → float (1, C, H, W) in [0, 1]."""
    a = arr.astype(np.float32) / 255
    return torch.from_numpy(a[..., None] if a.ndim == 2 else a).permute(2, 0, 1)[None]


def _back(t: torch.Tensor, gray: bool) -> np.ndarray:
    a = t[0].permute(1, 2, 0).numpy() * 255
    return a[..., 0] if gray else a


@pytest.mark.parametrize("gray", [True, False])
def test_augmentations_match_pillow(gray):
    Image = pytest.importorskip("PIL.Image")
    from PIL import ImageEnhance, ImageOps

    rng = np.random.default_rng(3)
    arr = rng.integers(30, 200, (9, 11) if gray else (9, 11, 3)).astype(np.uint8)
    im = Image.fromarray(arr)
    x = _t(arr)
    pairs = [
        (sg.autocontrast(x), ImageOps.autocontrast(im), 1),
        (sg.brightness(x, 1.3), ImageEnhance.Brightness(im).enhance(1.3), 1),
        (sg.sharpness(x, 1.3), ImageEnhance.Sharpness(im).enhance(1.3), 2),
        (sg.sharpness(x, 0.4), ImageEnhance.Sharpness(im).enhance(0.4), 2),
    ]
    for ours, ref, levels in pairs:
        ref = np.asarray(ref).astype(np.float64)
        # Pillow works in uint8 and truncates (sharpness twice: filter, then blend); the float
        # version differs by at most that many grey levels, and mostly by none
        diff = np.abs(_back(ours, gray) - ref)
        assert diff.max() <= levels + 1e-3 and np.median(diff) < 1


def test_augmentation_definitions_by_hand():
    x = torch.tensor([[0.2, 0.4], [0.6, 0.8]])[None, None]
    assert torch.allclose(sg.autocontrast(x), torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]])[None, None])
    assert torch.allclose(sg.brightness(x, 1.3), torch.tensor([[0.26, 0.52], [0.78, 1.0]])[None, None])
    flat = torch.full((1, 1, 4, 4), 0.3)
    assert torch.equal(sg.autocontrast(flat), flat)  # a constant image is left alone
    y = torch.zeros(1, 1, 5, 5)
    y[0, 0, 2, 2] = 0.5
    s = sg.sharpness(y, 2.0)
    smooth_centre = 0.5 * 5 / 13
    assert s[0, 0, 2, 2].item() == pytest.approx(smooth_centre + 2 * (0.5 - smooth_centre))
    assert torch.equal(s[0, 0, 0], y[0, 0, 0])  # border rows/columns are not filtered (Pillow)


class Threshold(sg.Scorer):
    """A toy model: a pixel is foreground when its brightness is above 0.5 (16 identical maps)."""

    device = torch.device("cpu")

    def maps(self, x):
        return x.mean(1, keepdim=True).repeat(1, 16, 1, 1)

    def head(self, m):
        return torch.sigmoid(20 * (m.mean(1, keepdim=True) - 0.5))


def test_tiles_are_scored_at_the_models_own_resolution_unless_the_user_sets_one():
    """SuggestParams.scale None: the scorer's own (Scorer.scale: 1/2, a perceptron 1/3); a scale given wins."""
    seen = []

    class Recording(Threshold):
        scale = 1

        def maps(self, x):
            seen.append(tuple(x.shape[-2:]))
            return super().maps(x)

    img = _clean_and_ambiguous()
    for scale, side in ((None, 32), (2, 16), (9, 16)):  # never below 16 px a side
        seen.clear()
        run(sg.suggest_iter([img], Recording(), sg.SuggestParams(tile=32, top=1, score="entropy", scale=scale)))
        assert set(seen) == {(side, side)}, scale
    assert sg.Scorer.scale == 2 and sg.PerceptronScorer.scale == 3


def _clean_and_ambiguous(seed=0):
    """A 32×64 image: left tile clean (dark and bright halves), right tile grey noise near the threshold."""
    rng = np.random.default_rng(seed)
    img = np.zeros((32, 64), np.float32)
    img[:, :32] = 0.1
    img[:16, :32] = 0.9
    img[:, 32:] = 0.5 + rng.normal(0, 0.03, (32, 32))
    return img


@pytest.mark.parametrize("score", ["consistency", "entropy", "mc-dropout"])
def test_scores_rank_ambiguous_tile_above_clean(score):
    hits = run(sg.suggest_iter([_clean_and_ambiguous()], Threshold(),
                               sg.SuggestParams(tile=32, top=2, score=score, scale=1)))
    assert [h.box for h in hits] == [(0, 32, 32, 32), (0, 0, 32, 32)]
    assert hits[0].score > 3 * hits[1].score
    assert [h.rank for h in hits] == [1, 2]


def test_perceptron_consistency_prefers_unseen_texture(tmp_path):
    """With a real fitted perceptron: a tile of mid-grey noise (unlike anything in the support)
    is less consistent than a tile like the support's."""
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    img, mask = blobs((64, 64), seed=1, n=6)
    model = run(fit_iter([support(img, mask)], PerceptronParams(max_pixels=5000)))
    rng = np.random.default_rng(0)
    test = np.concatenate([blobs((64, 64), seed=2, n=6)[0],
                           (115 + rng.normal(0, 30, (64, 64))).clip(0, 255).astype(np.uint8)], 1)
    for score in ("consistency", "entropy"):
        hits = run(sg.suggest_iter([test], sg.scorer_for(model), sg.SuggestParams(tile=64, top=2, score=score)))
        assert hits[0].box == (0, 64, 64, 64), score


def test_random_score_is_seeded():
    img = np.zeros((64, 64), np.uint8)
    a = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=16, top=16, score="random", seed=1)))
    b = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=16, top=16, score="random", seed=1)))
    c = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=16, top=16, score="random", seed=2)))
    assert a == b and [h.box for h in a] != [h.box for h in c]
    assert sorted(h.box for h in a) == sorted(tile_boxes((64, 64), 16))


def _three_textures(rng) -> np.ndarray:
    """A 128×192 image: a flat left third, a noisy middle third, stripes on the right third (three kinds)."""
    img = np.full((128, 192), 60.0)
    img[:, 64:128] += rng.normal(0, 40, (128, 64))
    img[:, 128:] = 60 + 120 * ((np.arange(64) // 4) % 2)[None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def test_coverage_suggests_one_tile_of_each_kind_without_a_model():
    """Issue 21 item 3: the cold start covers the images' kinds of texture, the largest first; an annotated kind
    is passed over."""
    img = _three_textures(np.random.default_rng(0))
    p = sg.SuggestParams(tile=32, top=3, score="coverage", scale=1)
    hits = run(sg.suggest_iter([img], None, p))
    kinds = [h.box[1] // 64 for h in hits]
    assert sorted(kinds) == [0, 1, 2]  # one tile of each third
    assert abs(sum(h.score for h in hits) - 1) < 1e-6 and hits[0].score >= hits[-1].score
    again = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=32, top=2, score="coverage", scale=1),
                                exclude={0: [(0, 128, 32, 32)]}))
    assert all(h.box[1] < 128 for h in again)  # the stripes are annotated: the other two kinds come first


def test_diverse_suggestions_pass_over_the_kind_already_annotated():
    """Issue 21 item 3: once a tile is annotated, a diverse model score asks first for a kind of tile no annotated
    one belongs to; without it, the same kind keeps scoring highest."""
    img = _three_textures(np.random.default_rng(0))
    done = {0: [(0, 64, 32, 32)]}  # a tile of the noisy middle third, the kind the toy model is least sure of
    for diverse, middle in ((False, True), (True, False)):
        p = sg.SuggestParams(tile=32, top=2, score="entropy", scale=1, diverse=diverse)
        hits = run(sg.suggest_iter([img], Threshold(), p, exclude=done))
        assert (hits[0].box[1] // 64 == 1) == middle, diverse


def test_diverse_suggestions_score_only_the_new_kinds_when_they_suffice():
    """The tiles of kinds already annotated rank last, so when the new kinds hold enough suggestions their scores
    are not computed; the suggestions are those of scoring every tile."""
    class Counting(Threshold):
        seen = 0

        def maps(self, x):
            Counting.seen += len(x)
            return super().maps(x)

    from napari_fewcell.engine.suggest import tiles

    img = _three_textures(np.random.default_rng(0))
    done = {0: [(0, 64, 32, 32)]}
    arrs, cands = sg.candidates([img], 32, done)
    p = sg.SuggestParams(tile=32, top=2, score="entropy", scale=1)
    hits = run(sg.suggest_iter([img], Counting(), p, exclude=done))
    assert 0 < Counting.seen < len(cands)
    # the same ranking from every tile's score: the plain score of all of them, the new kinds first
    every = run(sg.suggest_iter([img], Threshold(), dataclasses.replace(p, top=len(cands), diverse=False),
                                exclude=done))
    by_box = {h.box: h.score for h in every}
    values = np.array([by_box[tuple(b)] for _, b in cands])
    novel = run(tiles.novelty(arrs, cands, done, p, 1))
    want = tiles.apart(cands, tiles.ranked(values, novel), p.top)
    assert [h.box for h in hits] == [tuple(cands[j][1]) for j in want]
    assert np.allclose([h.score for h in hits], values[want])


def test_tiles_cover_image_flush_with_edges():
    boxes = tile_boxes((100, 70), 32)
    cover = np.zeros((100, 70), int)
    for y, x, h, w in boxes:
        assert (h, w) == (32, 32) and y + h <= 100 and x + w <= 70
        cover[y : y + h, x : x + w] += 1
    assert cover.min() >= 1
    assert (68, 38, 32, 32) in boxes
    assert tile_boxes((64, 64), 64) == [(0, 0, 64, 64)]


def test_excluded_tiles_are_never_suggested():
    img = _clean_and_ambiguous()
    p = sg.SuggestParams(tile=32, top=3, scale=1, diverse=False, score="consistency")
    hits = run(sg.suggest_iter([img, img], Threshold(), p, exclude={0: [(5, 40, 10, 10)]}))
    assert (0, (0, 32, 32, 32)) not in [(h.image, h.box) for h in hits]
    assert (hits[0].image, hits[0].box) == (1, (0, 32, 32, 32))


def test_bad_input_one_sentence():
    img = np.zeros((64, 64), np.uint8)
    cases = [
        (dict(tile=128), "larger than"),
        (dict(tile=8), "too small"),
        (dict(tile=32, top=5), "only 4 tiles"),
        (dict(score="margin"), "no score named"),
        (dict(tile=32, scale=0), "must be 1"),
    ]
    for kw, text in cases:
        with pytest.raises(FewcellError, match=text):
            run(sg.suggest_iter([img], Threshold(), sg.SuggestParams(**{"top": 1, **kw})))
    with pytest.raises(FewcellError, match="channel counts"):
        run(sg.suggest_iter([img, np.zeros((64, 64, 3), np.uint8)], Threshold(), sg.SuggestParams(tile=32)))
    with pytest.raises(FewcellError, match="needs a model"):
        run(sg.suggest_iter([img], None, sg.SuggestParams(tile=32, top=1, score="consistency")))
    with pytest.raises(FewcellError, match="nothing left"):
        run(sg.suggest_iter([img], Threshold(), sg.SuggestParams(tile=64, top=1), exclude={0: [(0, 0, 64, 64)]}))
    with pytest.raises(FewcellError, match="fit a model first"):
        sg.scorer_for(object())


def _models():
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support
    from napari_fewcell.engine.nets.unet import NetConfig, SegNet
    from napari_fewcell.engine.partial import SegModel
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    img, mask = blobs((64, 64), seed=4, n=6)
    seg = Segmenter(PromptParams(device="cpu"))
    return img, {
        "network": sg.shipped_network(None, 1, "cpu"),
        "perceptron": sg.scorer_for(run(fit_iter([support(img, mask)], PerceptronParams(max_pixels=4000)))),
        "stage-2": sg.scorer_for(SegModel(SegNet(NetConfig(base=8, depth=2, embed_dim=3)), [0, 1, 2], device="cpu")),
        "prompt": sg.scorer_for(seg, seg.prepare_prompt(img, mask, (8, 8, 32, 32))),
    }


def test_every_model_kind_scores_every_way():
    img, models = _models()
    assert isinstance(models["stage-2"], sg.SegModelScorer) and models["stage-2"].exclusive
    for name, scorer in models.items():
        tiles = [img[None, :32, :32], img[None, 32:, 32:]]
        x = torch.from_numpy(np.stack([np.repeat(t / 255.0, 3, 0) for t in tiles]).astype(np.float32))
        with torch.inference_mode():  # as score_batch calls them
            probs, stacked = scorer.predict(x), scorer.head(scorer.maps(x))
        assert probs.shape[0] == 2 and probs.shape[2:] == (32, 32), name
        assert torch.allclose(probs, stacked, atol=1e-4), name  # a batch at once, as through the feature stack
        assert float(probs.min()) >= 0 and float(probs.max()) <= 1, name
        for score in ("consistency", "entropy", "mc-dropout"):
            s = sg.score_batch(scorer, x, sg.SuggestParams(score=score))
            assert s.shape == (2,) and np.isfinite(s).all() and (s >= 0).all(), (name, score)


def test_mc_dropout_is_reproducible_and_leaves_global_rng_alone():
    img = _clean_and_ambiguous()
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    p = sg.SuggestParams(tile=32, top=2, score="mc-dropout", scale=1)
    a = run(sg.suggest_iter([img], Threshold(), p))
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert a == run(sg.suggest_iter([img], Threshold(), p))
    seen = {"maps": [], "head": []}

    class Recording(Threshold):
        def maps(self, x):
            seen["maps"].append(super().maps(x))
            return seen["maps"][-1]

        def head(self, m):
            seen["head"].append(m)
            return super().head(m)

    run(sg.suggest_iter([img], Recording(), p))  # both tiles in one batch: the maps once, then a head per pass
    (maps,), heads = seen["maps"], seen["head"]
    assert len(heads) == p.passes
    live = maps != 0
    for m in heads:  # each pass drops about half the values and doubles the others
        kept = (m != 0) & live
        assert torch.allclose(m[kept], 2 * maps[kept]) and abs(kept.sum().item() / live.sum().item() - 0.5) < 0.02
    assert not torch.equal(heads[0] != 0, heads[1] != 0)  # a new mask each pass


def test_pretext_labels_bright_objects_and_dark_membranes():
    img, mask = blobs((96, 96), seed=5, n=8)
    lab = pretext.pretext_labels(img)
    inter = (lab.astype(bool) & mask.astype(bool)).sum()
    assert inter / mask.sum() > 0.9 and lab.mean() < 0.5
    # dark thin lines on a bright background: the lines (the minority) are the foreground
    em = np.full((96, 96), 200, np.uint8)
    em[::16] = 40
    em[:, ::16] = 40
    lab = pretext.pretext_labels(em)
    assert lab[::16].all() and lab[8, 8] == 0


def test_pretext_adapts_a_copy_of_the_network():
    img, _ = blobs((96, 96), seed=6, n=8)
    base = sg.shipped_network("em_membrane", device="cpu")
    before = {k: v.clone() for k, v in base.net.state_dict().items()}
    tuned = run(pretext.pretext_iter(base, [img], pretext.PretextParams(steps=3, batch=2, crop=32)))
    assert isinstance(tuned, sg.MSDScorer) and "pretext" in tuned.name
    assert all(torch.equal(before[k], v) for k, v in base.net.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in tuned.net.state_dict().items())
    hits = run(sg.suggest_iter([img], tuned, sg.SuggestParams(tile=32, top=3)))
    assert len(hits) == 3


def test_suggestions_do_not_overlap_each_other():
    """On a 48×40 image, 32² tiles flush with the edges overlap: the top two are never overlapping
    when a disjoint pair exists; asking for every tile still returns every tile."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (64, 40)).astype(np.uint8)
    boxes = tile_boxes(img.shape, 32)
    assert len(boxes) == 4  # (0,0) (0,8) (32,0) (32,8): the two of each row overlap
    for seed in range(5):
        hits = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=32, top=2, score="random", seed=seed)))
        assert not overlaps(hits[0].box, hits[1].box)
    hits = run(sg.suggest_iter([img], None, sg.SuggestParams(tile=32, top=4, score="random")))
    assert sorted(h.box for h in hits) == sorted(boxes)
