"""Workflows 2–4 as requests and jobs (issue 23, item 1): each request checks everything before work starts, in one
sentence, and its job gives what the workflow's own steps give, with its provenance."""
from __future__ import annotations

import json

import numpy as np
import pytest

from napari_fewcell.engine import FewcellError, annotate, run
from napari_fewcell.engine.fewshot import FitRequest, PerceptronParams, fit_iter, fit_job, fit_report, support
from napari_fewcell.engine.partial import (
    PseudoParams,
    PseudoRequest,
    TrainParams,
    TrainRequest,
    pseudo_job,
    pseudolabel_iter,
    train_job,
)
from napari_fewcell.engine.suggest import SuggestParams, SuggestRequest, suggest_iter, suggest_job

from .conftest import blobs

BOX = (16, 16, 64, 64)


@pytest.fixture(scope="module")
def pairs():
    return [blobs((96, 96), seed=20 + i, n=10) for i in range(2)]


# ---- workflow 2 ------------------------------------------------------------------------------------
def test_pseudo_job_is_stage_one_with_its_provenance(pairs):
    data = [annotate(pairs[0][0], pairs[0][1], [BOX], name="a"), annotate(pairs[1][0], name="b")]
    params = PseudoParams(epochs=0, adapt="none", device="cpu")  # attention alone: the cheapest labeller
    want = run(pseudolabel_iter(data, params))
    source = {"images": ["a.tif", "b.tif"], "boxes": [list(BOX)]}
    request = PseudoRequest(data, params, TrainParams(steps=3, batch=2, crop=32, device="cpu"), {1: "cell"}, source)
    result = run(pseudo_job(request))
    for got, expected in zip(result.labels, want.labels):
        np.testing.assert_array_equal(got, expected)
    assert result.provenance["images"] == ["a.tif", "b.tif"] and result.provenance["stage1"]["epochs"] == 0
    assert result.report()[-1].startswith("Labelled with")
    net = run(train_job(request.train_request(result)))
    assert net.card["images"] == ["a.tif", "b.tif"] and net.card["stage1"]["epochs"] == 0
    assert net.card["params"]["steps"] == 3 and net.class_names == {"1": "cell"}
    json.dumps(net.card)  # the card is written next to the network as JSON


def test_partial_requests_say_what_is_wrong_before_work(pairs):
    data = [annotate(pairs[0][0], pairs[0][1], [BOX], name="a")]
    cases = [
        (PseudoRequest(data, PseudoParams(epochs=-1)), "cannot be negative"),
        (PseudoRequest(data, train=TrainParams(steps=0)), "at least one step"),  # stage 2's, before stage 1
        (PseudoRequest([annotate(pairs[0][0], name="u")]), "box"),
        (TrainRequest([pairs[0][0]], []), "one labels array per image"),
        (TrainRequest([pairs[0][0]], [np.zeros((5, 5), np.uint8)]), "give labels of its shape"),
        (TrainRequest([], []), "no image to train on"),
    ]
    for request, text in cases:
        with pytest.raises(FewcellError, match=text):
            request.check()
        job = pseudo_job(request) if isinstance(request, PseudoRequest) else train_job(request)
        with pytest.raises(FewcellError, match=text):
            next(job)  # the job checks before it yields anything
    with pytest.raises(FewcellError, match="no stage-2 training"):
        PseudoRequest(data).train_request(None)


# ---- workflow 3 ------------------------------------------------------------------------------------
def test_fit_job_is_fit_iter_and_reports(pairs):
    (img, mask), (other, _) = pairs
    params = PerceptronParams(max_pixels=3000, device="cpu")
    model = run(fit_job(FitRequest([support(img, mask)], params, {1: "nucleus"})))
    again = run(fit_iter([support(img, mask)], params))
    np.testing.assert_allclose(model.W, again.W, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(other), again.predict(other))
    assert model.meta["class_names"] == {"1": "nucleus"} and model.meta["params"]["max_pixels"] == 3000
    report = fit_report(model)
    assert report[0].startswith("class 1: logistic Dice loss") and report[-1].startswith("features ")


def test_fit_request_says_what_is_wrong(pairs):
    (img, mask), _ = pairs
    colour = np.repeat(img[..., None], 3, axis=2)
    cases = [
        (FitRequest([]), "No support image"),
        (FitRequest([support(img, mask), support(colour, mask, name="rgb")]), "same number of channels"),
        (FitRequest([support(img, np.zeros_like(mask))]), "structure and some background"),
        (FitRequest([support(img, mask)], PerceptronParams(lam=-1)), "non-negative"),
    ]
    for request, text in cases:
        with pytest.raises(FewcellError, match=text):
            next(fit_job(request))


# ---- workflow 4 ------------------------------------------------------------------------------------
def test_suggest_job_ranks_as_suggest_iter(pairs):
    planes = [pairs[0][0], pairs[1][0]]
    params = SuggestParams(tile=32, top=4, score="coverage")
    want = run(suggest_iter(planes, None, params))
    result = run(suggest_job(SuggestRequest(planes, ["a", "b"], params)))
    assert result.hits == want and result.scored_by is None and result.score == "coverage"
    rows = result.rows([("a.tif", None), ("s.tif", 3)])
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert all(r["image"] == ("a.tif" if h.image == 0 else "s.tif") for r, h in zip(rows, result.hits))
    assert all(("plane" in r) == (h.image == 1) for r, h in zip(rows, result.hits))


def test_suggest_job_scores_with_the_shipped_network(pairs):
    params = SuggestParams(tile=32, top=2, device="cpu", score="consistency")
    result = run(suggest_job(SuggestRequest([pairs[0][0]], params=params)))
    assert result.scored_by == "shipped:fluo_nuclei" and len(result.hits) == 2


def test_suggest_request_says_what_is_wrong(pairs):
    img = pairs[0][0]
    cases = [
        (SuggestRequest([]), "no image"),
        (SuggestRequest([img], ["a", "b"]), "one name per image"),
        (SuggestRequest([img], model="m.npz", pretext=True), "drop one of the two"),
        (SuggestRequest([img], params=SuggestParams(tile=512)), "larger than"),
        (SuggestRequest([img], pretext_steps=0), "Pretext training needs steps ≥ 1"),
    ]
    for request, text in cases:
        with pytest.raises(FewcellError, match=text):
            next(suggest_job(request))
