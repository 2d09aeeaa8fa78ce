"""Stage 1's last step: the images are labelled on the path its held-out choice checked, without a second check;
the check of many boxes attends only where its forests learn."""
from __future__ import annotations

import numpy as np
import torch

from napari_fewcell.engine import PromptParams, PseudoParams, Segmenter, annotate, pseudolabel_iter, run
from napari_fewcell.engine.partial.pseudo import label_all
from napari_fewcell.engine.prompt import adapt

from .conftest import blobs

BOXES = [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]


def counting_forest_checks(monkeypatch) -> list:
    """Patch the self-check's forest check so that each call is counted (one entry per check of a path)."""
    calls, engine = [], adapt.forest_check

    def forest_check(*args, **kwargs):
        calls.append(1)
        return (yield from engine(*args, **kwargs))

    monkeypatch.setattr(adapt, "forest_check", forest_check)
    return calls


def test_the_images_are_labelled_on_the_path_the_choice_checked(monkeypatch):
    """A wrecked fine-tuning loses to the pre-trained network on the default path; the choice checked that path's
    estimates on the boxes it did not hold out, and labelling every image reuses them: one fused-path check in all
    (there were two before, the second on every box, 12 s of ISBI's 15-image run)."""
    calls = counting_forest_checks(monkeypatch)
    (a, ma), (b, _) = blobs((112, 112), seed=10, n=14), blobs((112, 112), seed=11, n=14)
    data = [annotate(a, ma, BOXES), annotate(b)]
    wreck = PseudoParams(epochs=2, steps_per_epoch=3, batch=1, crop=64, lr=0.05, keep_best=False, device="cpu")
    res = run(pseudolabel_iter(data, wreck))
    assert res.labeller["network"] == "pre-trained" and res.labeller["path"] == "auto"
    assert set(res.labeller["estimates"]) == {"none", "fuse"}
    assert all(0.0 <= v <= 1.0 for v in res.labeller["estimates"].values())
    assert len(calls) == 1


def test_reused_estimates_choose_the_path_and_skip_the_check(monkeypatch):
    """Estimates given to ``adapt_iter`` (or ``label_all``) name the path "auto" takes, and no path is checked again;
    without them the check runs."""
    calls = counting_forest_checks(monkeypatch)
    a, ma = blobs((112, 112), seed=10, n=14)
    seg = Segmenter(PromptParams(device="cpu"))
    for estimates, path in (({"none": 0.2, "fuse": 0.9}, "fuse"), ({"none": 0.9, "fuse": 0.2}, "none")):
        prompt = seg.prepare_prompt_boxes(a, ma, BOXES)
        run(seg.adapt_iter(prompt, estimates))
        assert prompt.path == path and prompt.check == estimates
    assert not calls
    run(seg.adapt_iter(seg.prepare_prompt_boxes(a, ma, BOXES)))
    assert len(calls) == 1
    data = [annotate(a, ma, BOXES)]
    params = PseudoParams(device="cpu")
    labels, _ = run(label_all(data, np.array([0, 1]), params, seg.model, "cpu", "auto", {"none": 0.9, "fuse": 0.2}))
    attention = Segmenter(PromptParams(device="cpu", adapt="none"))
    plain = attention.segment(a, attention.prepare_prompt_boxes(a, ma, BOXES))
    unknown = ~data[0].known
    assert np.array_equal(labels[0][unknown], plain[unknown])
    assert len(calls) == 1


def test_the_nested_attention_runs_on_the_forests_pixels_alone():
    """The fused path's check asks the nested attention only for the pixels its forest learns from (a sample of
    many boxes' pixels): those rows are the ones every pixel would get, the others stay 0."""
    from napari_fewcell.engine.prompt.annotated import BoxData, PromptSource

    rng = np.random.default_rng(0)
    y = (rng.random(256) < 0.4).astype(np.int64)
    box = BoxData(torch.from_numpy(rng.normal(size=(256, 8)).astype(np.float32)), y,
                  PromptSource(np.zeros((3, 16, 16), np.float32), (0, 0), (16, 16)), 0.1)
    rows = rng.random(256) < 0.3
    every, some = adapt.held_out_probs(box, exclude=(1,)), adapt.held_out_probs(box, exclude=(1,), rows=rows)
    assert np.allclose(some[rows], every[rows], atol=1e-6) and not some[~rows].any()
    assert every[rows & (box.quad != 1)].any()
