"""Workflow 4's suggest → accept → refit session (no Qt): refits, rescoring, the features prepared between rounds."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine import suggest as sg
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.progress import run

from .conftest import blobs


@pytest.mark.parametrize("model", ["perceptron", "prompt"])
def test_session_accept_refit_rescore(model):
    from napari_fewcell.engine.suggest import Session, SessionParams

    img, mask = blobs((128, 128), seed=8, n=22)
    s = Session([img], ["cells"], SessionParams(model=model, suggest=sg.SuggestParams(tile=64, top=2), device="cpu"))
    with pytest.raises(FewcellError, match="No tile is accepted yet"):
        run(s.refit_iter())
    first = run(s.suggest_iter())[0]
    with pytest.raises(FewcellError, match="labels are 64×64"):
        s.accept(first.image, first.box, mask[:64, :64])
    s.accept(first.image, first.box, np.zeros_like(mask))
    with pytest.raises(FewcellError, match="hold only background"):
        run(s.refit_iter())
    s.accept(first.image, first.box, mask)  # accepting again replaces the tile's labels
    assert len(s.accepted) == 1
    preds = run(s.refit_iter())
    assert 2 * ((preds[0] > 0) & (mask > 0)).sum() / ((preds[0] > 0).sum() + mask.sum()) > 0.85
    again = run(s.suggest_iter())
    assert all(h.box != first.box for h in again)
    s.skip(0, again[0].box)
    left = run(s.suggest_iter())
    assert len(left) == 2 and all(h.box not in (first.box, again[0].box) for h in left)
    s.skip(0, left[0].box)
    assert len(run(s.suggest_iter())) == 1  # one tile left: fewer suggestions than asked, no error


def test_session_can_keep_scoring_with_the_network():
    from napari_fewcell.engine.suggest import Session, SessionParams

    img, mask = blobs((128, 128), seed=11, n=20)
    p = SessionParams(suggest=sg.SuggestParams(tile=64, top=3, score="consistency"), device="cpu",
                      score_with="network")
    s = Session([img], ["cells"], p)
    first = run(s.suggest_iter())
    s.accept(0, first[0].box, mask)
    run(s.refit_iter())
    assert isinstance(run(s.scorer_iter()), sg.MSDScorer)
    again = run(s.suggest_iter())  # the fixed network: the same ranking, less the accepted tile
    assert [h.box for h in again][:2] == [h.box for h in first][1:]
    s.params.score_with = "model"
    assert isinstance(run(s.scorer_iter()), sg.PerceptronScorer)
    with pytest.raises(FewcellError, match="scored with one of"):
        SessionParams(score_with="oracle").check()


@pytest.mark.parametrize("score", ["consistency", "mc-dropout"])
def test_prepared_features_leave_the_suggestions_as_they_are(score, monkeypatch):
    """Session.prepare_iter (the widget runs it while the user paints) keeps the features of every tile version
    the score reads; the rescore after a refit then computes no features, and ranks as a session keeping none."""
    from napari_fewcell.engine.fewshot.features import Extractors
    from napari_fewcell.engine.suggest import Session, SessionParams

    img, mask = blobs((128, 128), seed=12, n=16)
    out = {}
    for memory in (0, 64):
        p = SessionParams(suggest=sg.SuggestParams(tile=64, top=2, score=score), device="cpu", tile_memory=memory)
        s = Session([img], ["cells"], p)
        first = run(s.suggest_iter())
        kept = run(s.prepare_iter())
        assert kept == s.tiles_prepared == (0 if memory == 0 else 4 * (4 if score == "consistency" else 1))
        s.accept(0, first[0].box, mask)
        run(s.refit_iter(predict=[]))
        computed = []
        real = Extractors.region_batch
        monkeypatch.setattr(Extractors, "region_batch", lambda fx, x: computed.append(len(x)) or real(fx, x))
        out[memory] = run(s.suggest_iter())
        monkeypatch.undo()
        assert (sum(computed) == 0) == (memory > 0), computed
    assert [h.box for h in out[64]] == [h.box for h in out[0]]
    assert np.allclose([h.score for h in out[64]], [h.score for h in out[0]], rtol=1e-3)


def test_preparing_stops_when_its_memory_is_full():
    from napari_fewcell.engine.suggest import Session, SessionParams

    img, _ = blobs((192, 192), seed=12, n=30)
    # a 64² tile scored by the perceptron at 1/3, 21²: 116 features × 21² × 2 bytes ≈ 0.098 MiB per version, so 1 MiB
    # holds 10 (the 9 tiles' first versions, then one more)
    one = sg.SuggestParams(tile=64, score="consistency")
    s = Session([img], ["cells"], SessionParams(suggest=one, device="cpu", tile_memory=1))
    assert run(s.prepare_iter()) == s.tiles_prepared == 10
    prompt = SessionParams(model="prompt", suggest=one, device="cpu")
    assert run(Session([img], ["cells"], prompt).prepare_iter()) == 0
    with pytest.raises(FewcellError, match="memory for tile features must be 0 MiB or more"):
        SessionParams(tile_memory=-1).check()
