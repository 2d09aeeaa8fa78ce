"""A prompt box as big as the image (an annotated region may be a box or the whole image).

The self-check used to run held-out attention from every box pixel and let its forests predict every one, so a
whole-image box of 520×696 took minutes to check on 2 cores. A part bigger than ``annotated.PART_PIXELS`` is now
checked and fitted on a sample of its pixels: these tests count the work (no timed assertions) and check that the
result is still sensible, and that a prompt of small boxes is not sampled at all (its results are as before).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_fewcell.engine import PromptParams, Segmenter
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.prompt import adapt
from napari_fewcell.engine.prompt.annotated import PART_PIXELS, BoxData, PromptSource
from napari_fewcell.engine.prompt.filters import SAMPLE_CLASS_MIN, SAMPLE_PIXELS

from .conftest import blobs, dice_mean

#: a sample may exceed its cap by the pixels kept of each class in each quadrant (2 classes × 4 quadrants)
SLACK = 2 * 4 * SAMPLE_CLASS_MIN


def counting(monkeypatch) -> dict:
    """Record the work of the self-check and the fit: the queries and keys of every attention call, the rows of every
    forest fitted and of every forest prediction, and the pixels of every prompt the check reads."""
    work = {"queries": [], "keys": [], "fitted": [], "predicted": [], "checked": []}
    attend, fit, proba, check = adapt.attention.attend, adapt.fit_forest, adapt.forest_proba, adapt.self_check

    def counted_attend(x, keys, tau, *args):
        work["queries"].append(len(x))
        work["keys"].append(len(keys.keys))
        return attend(x, keys, tau, *args)

    def counted_check(model, box, *args):
        work["checked"].append(len(box.y))
        return (yield from check(model, box, *args))

    monkeypatch.setattr(adapt.attention, "attend", counted_attend)
    monkeypatch.setattr(adapt, "fit_forest", lambda t, x, y, *a: work["fitted"].append(len(x)) or fit(t, x, y, *a))
    monkeypatch.setattr(adapt, "forest_proba", lambda f, x, c: work["predicted"].append(len(x)) or proba(f, x, c))
    monkeypatch.setattr(adapt, "self_check", counted_check)
    return work


def test_a_whole_image_box_is_checked_on_a_sample_and_segments_well(monkeypatch):
    """A fully labelled box of the whole 256×256 image (65,536 pixels, 4× the cap): the check's attention, forests and
    the final forest read a sample of about PART_PIXELS of them, and the result is as good as a small box's."""
    img, mask = blobs((256, 256), seed=5, n=70, radius=7)
    seg = Segmenter(PromptParams(device="cpu", adapt="fuse"))
    prompt = seg.prepare_prompt(img, mask, (0, 0, 256, 256))
    assert len(prompt.labels) == 256 * 256 > 2 * PART_PIXELS
    with monkeypatch.context() as m:
        work = counting(m)
        ad = seg.adapt(prompt)
    assert set(ad.check) == {"none", "fuse"} and ad.check["fuse"] > 0.8  # an estimate, and a good one
    assert work["checked"] == [pytest.approx(PART_PIXELS, abs=SLACK)]
    assert max(work["queries"]) <= PART_PIXELS + SLACK and max(work["keys"]) <= SAMPLE_PIXELS + SLACK
    # held-out attention: each sampled pixel once; nested: the pixels of each forest of the check (three quarters of
    # the sample, four forests). Every pixel of the box would have been 2 × 65,536 queries
    assert sum(work["queries"]) <= 4 * (PART_PIXELS + SLACK)
    assert sum(work["predicted"]) <= PART_PIXELS + SLACK  # each held-out pixel of the sample once
    assert max(work["fitted"]) <= PART_PIXELS + SLACK  # the check's forests and the final one
    assert ad.counts.sum() == work["fitted"][-1]  # the final forest learnt from the sample
    out = seg.segment(img, prompt)
    assert dice_mean(out, mask) > 0.85


def synthetic_box(side: int, seed: int = 0) -> BoxData:
    """A side×side box of blobs whose 8-d embeddings tell the classes apart (noisily), as a network's would."""
    img, mask = blobs((side, side), seed=seed, n=side * side // 600, radius=6)
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 1, (side * side, 8)).astype(np.float32)
    emb[:, 0] += 3 * mask.reshape(-1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    region = np.repeat(img[None].astype(np.float32) / 255, 3, 0)
    return BoxData(torch.from_numpy(emb), mask.reshape(-1).astype(np.int64),
                   PromptSource(region, (0, 0), (side, side)), 0.1)


def test_the_checks_work_does_not_grow_with_the_box(monkeypatch):
    """Boxes of 192² and 384² (36,864 and 147,456 pixels): the self-check of the fused path does the same work,
    that of a sample of PART_PIXELS."""
    params = PromptParams(device="cpu", adapt="fuse", check_trees=4)
    seen = {}
    for side in (192, 384):
        with monkeypatch.context() as m:
            work = counting(m)
            check, reuse = run(adapt.self_check(None, synthetic_box(side).sampled(), params, ("none", "fuse")))
        assert set(check) == {"none", "fuse"} and len(reuse["loqo"]) == work["checked"][0]
        seen[side] = {k: sum(v) for k, v in work.items()}
    assert seen[192]["checked"] == pytest.approx(PART_PIXELS, abs=SLACK)
    for k in seen[192]:  # the same work, up to the few pixels each class of each quadrant keeps
        assert seen[384][k] == pytest.approx(seen[192][k], rel=0.1), k


def test_a_sample_keeps_each_quadrants_classes_and_small_boxes_are_read_whole():
    big = synthetic_box(200, seed=2)
    sample = big.sampled()
    assert len(sample.y) == pytest.approx(PART_PIXELS, abs=SLACK) and len(big.y) == 200 * 200
    assert np.array_equal(sample.fair, np.ones(len(sample.y), bool)) and big.fair.all()
    for q in range(4):  # each quadrant keeps its share and its classes
        assert set(sample.y[sample.quad == q]) == set(big.y[big.quad == q])
        assert (sample.quad == q).mean() == pytest.approx(0.25, abs=0.02)
    # the sample is a mask of the part: its pixels' embeddings, positions and filters are the whole part's
    src = sample.sources[0]
    assert src.mask.sum() == len(sample.y) and src.region is big.sources[0].region
    index = {tuple(p): i for i, p in enumerate(big.sources[0].positions())}
    rows = [index[tuple(p)] for p in src.positions()]
    assert torch.equal(sample.emb, big.emb[rows]) and np.array_equal(sample.y, big.y[rows])
    small = synthetic_box(128)  # 16,384 pixels: read whole, the same object
    assert len(small.y) == PART_PIXELS and small.sampled() is small
    several = BoxData(torch.zeros(2 * 64 * 64, 1), np.tile(np.r_[np.zeros(2048), np.ones(2048)], 2).astype(int),
                      [PromptSource(np.zeros((3, 64, 64), np.float32), (0, 0), (64, 64))] * 2, 0.1)
    assert several.sampled() is several


def test_prototypes_of_a_big_class_come_from_a_sample_and_weigh_every_pixel(monkeypatch):
    """Above KMEANS_PIXELS pixels of a class, k-means is fitted on a seeded sample, and every pixel still counts for
    its nearest prototype; at or below it, the keys are those of every pixel, as before."""
    from sklearn.cluster import KMeans

    from napari_fewcell.engine.nets import attention

    rng = np.random.default_rng(0)
    emb = torch.from_numpy(rng.normal(0, 1, (3000, 8)).astype(np.float32))
    labels = (rng.random(3000) < 0.3).astype(np.int64)
    whole = attention.prototype_keys(emb, labels, k=16)
    fitted = []
    fit = KMeans.fit
    monkeypatch.setattr(KMeans, "fit", lambda self, x, *a, **kw: fitted.append(len(x)) or fit(self, x, *a, **kw))
    monkeypatch.setattr(attention, "KMEANS_PIXELS", 1000)
    sampled = attention.prototype_keys(emb, labels, k=16)
    assert fitted == [1000, int(labels.sum())]  # background (2,096 px) sampled, the class (904 px) whole
    for keys in (whole, sampled):  # log counts of the prototypes: every pixel of each class is counted once
        for c in (0, 1):
            rows = keys.values[:, c] > 0
            assert np.exp(keys.bias[rows].numpy()).sum() == pytest.approx((labels == c).sum())
    assert torch.equal(sampled.keys[sampled.values[:, 1] > 0], whole.keys[whole.values[:, 1] > 0])
