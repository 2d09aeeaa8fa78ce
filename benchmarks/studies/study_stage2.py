#!/usr/bin/env python
"""Stage 2 of workflow 2 (issue 24): how the segmentation network trained on the pseudo-labels should start and
which pixels it should learn from. One leave-one-data-set-out fold, bench_partial.py's protocol (one centre 64×64
box per train image): the pseudo-labels are stage 1's without fine-tuning (``--epochs 0``: the pre-trained
network on the default path from all the boxes, i.e. one-shot's labels, which stage 1 keeps unless fine-tuning
wins on its held-out boxes), then several stage-2 variants are trained on the same labels and scored on the test
images, with one-shot and the RF on the same boxes beside.

    python benchmarks/studies/study_stage2.py --data ../shared/data --dataset isbi2012_membrane \\
        --weights benchmarks/weights/lodo_isbi_episodic.pt --out benchmarks/results/stage2_lodo_isbi.md \\
        scratch:1500 pretrained:1500 pretrained:500 pretrained:1500:0.8

``--stage1 default`` runs stage 1 as the product does (fine-tuning, then its choice of labeller) instead; the init
``finetuned`` then starts stage 2 from the fine-tuned embedding network (``PseudoResult.finetuned``) instead of the
pre-trained one (``pretrained``), on the same pseudo-labels.

A variant is INIT:STEPS[:MIN_CONFIDENCE][:ema=DECAY][:share=SHARE][:lr=LR][:deform=SD][:order=K][:rounds=R]
[:precision=P][:colour_jitter=J] (pixels whose pseudo-label confidence is below MIN_CONFIDENCE are left out; the
network kept is the moving average of its weights with DECAY; only the most confident SHARE of each class's pixels
are learnt from; LR is the peak learning rate; SD is the elastic warp's, ``TrainParams.deform``, whose image is
interpolated by splines of order K, the engine's by default; with R > 1, each round after the first trains a new
network on the previous one's labels of the train images, the annotated box pixels kept: self-training; R is 1
unless given, one round, as the engine did before 2026-12-07; P is ``TrainParams.precision``, the engine's default
unless given: auto since 2026-12-07, bfloat16 on this machine, earlier runs trained in float32; J is
``TrainParams.colour_jitter``, the engine's default unless given: 0.1 since 2026-12-07 afternoon, 0 before). With
``--seeds 0 1 2`` each variant is trained once per seed (``TrainParams.seed``: the network's new head, the crops and
their order) on the same pseudo-labels, and a last row per variant gives the mean and spread over the seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import contextlib
import functools
import tempfile
import time

import numpy as np
from bench_partial import centre_box, fold_parser, forest_on_boxes, ms, one_shot
from common import Dataset, dice_pct, finish_report, log, report_header, set_threads


def main() -> None:
    ap = fold_parser(__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="train each variant once per seed")
    ap.add_argument("--stage1", choices=["none", "default"], default="none",
                    help="none: the pre-trained network's labels (no fine-tuning); default: stage 1 as the product")
    ap.add_argument("--tta", action="store_true", help="also score each trained network with its 8-view TTA")
    ap.add_argument("--out", required=True)
    ap.add_argument("variants", nargs="+", metavar="INIT:STEPS[:MIN_CONFIDENCE][:name=VALUE]...")
    a = ap.parse_args()
    from napari_fewcell.engine import PseudoParams, annotate, pseudolabel_iter, run
    from napari_fewcell.engine.partial import describe_labeller

    set_threads(a.threads)
    ds = Dataset(a.data, a.dataset, train_limit=a.train_limit)
    train, test, img, lab = ds.train, ds.test, ds.images, ds.labels
    boxes = {i: centre_box(img[i].shape) for i in train}
    shot, _ = one_shot(a.weights, img, lab, boxes, train, test)
    forest = forest_on_boxes(img, lab, boxes, train, test, a.threads)
    rf = [dice_pct(forest[i], lab[i]) for i in test]
    data = [annotate(img[i], lab[i], [boxes[i]], name=i) for i in train]
    stage1 = {"epochs": 0} if a.stage1 == "none" else {}
    res = run(pseudolabel_iter(data, PseudoParams(weights=a.weights, device="cpu", **stage1)))
    log(f"stage 1: {describe_labeller(res.labeller)}")
    rows = [f"| one-shot from the same boxes (default path) | {ms([dice_pct(shot[i], lab[i]) for i in test])} | |",
            f"| RF on all the boxes | {ms(rf)} | |",
            f"| (pseudo-labels on the train images: {ms([dice_pct(p, lab[i]) for p, i in zip(res.labels, train)])}) "
            "| | |", f"| (stage 1: {describe_labeller(res.labeller)}) | | |"]
    keep = [d.known for d in data]  # the annotated pixels a self-training round keeps
    for v in a.variants:
        with tempfile.TemporaryDirectory() as scratch:  # where a fine-tuned start is written, removed after
            rows += stage2_rows(v, a, img, lab, train, test, res, keep, Path(scratch))
    lines = report_header(f"Stage 2 variants on `{a.dataset}` (test images {test[0]}–{test[-1]})", False) + [
        f"- weights `{a.weights}`; train images {train[0]}–{train[-1]} ({len(train)}), one centre 64×64 box each", "",
        "| | Dice (%) on the test images, mean ± sd over images | training time |", "|---|---|---|", *rows, ""]
    finish_report(lines, a.out)


def confident_share(labels, confidence, share: float) -> list[np.ndarray]:
    """Per image, the pixels to learn from: of each label value, the ``share`` most confident over all the images
    (a class stage 1 is unsure of keeps as large a share as the others; a threshold would drop most of it)."""
    conf = [np.asarray(c, np.float32) for c in confidence]
    labs = [np.asarray(lab) for lab in labels]
    keep = [np.ones(c.shape, bool) for c in conf]
    for v in np.unique(np.concatenate([lab.ravel() for lab in labs])):
        cut = np.quantile(np.concatenate([c[lab == v] for c, lab in zip(conf, labs)]), 1 - share)
        for k, c, lab in zip(keep, conf, labs):
            k &= (lab != v) | (c >= cut)
    return keep


def stage2_rows(v: str, a, img, lab, train, test, res, keep, scratch: Path) -> list[str]:
    """The report's rows of one variant: one per seed, and with several seeds their mean ± sd (over seeds); ``keep``
    are the annotated pixels of the train images, a fine-tuned start is written to the folder ``scratch``."""
    from napari_fewcell.engine import TrainParams

    init, steps, *more = v.split(":")
    weights = a.weights
    if init == "finetuned":  # the fine-tuned embedding network, written where train_iter reads a weights file
        if res.finetuned is None:
            return ["| stage 2 from finetuned: stage 1 kept no fine-tuned network (`--stage1 default`?) | | |"]
        from napari_fewcell.engine.nets.unet import save_weights

        weights = str(scratch / "finetuned.pt")
        save_weights(res.finetuned, weights)
    conf = [m for m in more if "=" not in m]
    named = dict(m.split("=", 1) for m in more if "=" in m)
    ema, share = float(named.get("ema", 0.0)), float(named.get("share", 1.0))
    given = {k: float(named[k]) for k in ("lr", "deform", "colour_jitter") if k in named}  # TrainParams' fields
    order = int(named["order"]) if "order" in named else None  # the warp's interpolation of the image
    rounds = int(named.get("rounds", 1))  # self-training rounds
    if "precision" in named:  # TrainParams.precision
        given["precision"] = named["precision"]
    rows, means, means_tta = [], [], []
    for seed in a.seeds:
        tp = TrainParams(steps=int(steps), device="cpu", init="pretrained" if init == "finetuned" else init,
                         rounds=1, weights=weights, seed=seed, **given,
                         min_confidence=float(conf[0]) if conf else 0.0, ema=ema)
        log(f"stage 2: {v}, seed {seed}")
        t0 = time.perf_counter()
        known = confident_share(res.labels, res.confidence, share) if share < 1 else None
        with warp_order(order):
            model = train_rounds(rounds, tp, [img[i] for i in train], [lab[i] for i in train], res, known, keep,
                                 rows)
        secs = time.perf_counter() - t0
        d = [dice_pct(model.predict(img[i]), lab[i]) for i in test]
        means.append(float(np.mean(d)))
        share_all = model.card["known_pixels"] / sum(lab[i].size for i in train)
        kept = (f", pixels with confidence ≥ {conf[0]} ({share_all:.0%})" if conf else "") + \
            (f", weights' moving average (decay {ema})" if ema else "") + \
            (f", the most confident {share:.0%} of each class's pixels ({share_all:.0%})" if share < 1 else "") + \
            (f", peak learning rate {given['lr']:g}" if "lr" in given else "") + \
            (f", elastic warp sd {given['deform']:g} px" if "deform" in given else "") + \
            (f", colour jitter {given['colour_jitter']:g}" if "colour_jitter" in given else "") + \
            (f", the image interpolated by splines of order {order}" if order is not None else "") + \
            (f", {rounds} self-training rounds" if rounds > 1 else "") + \
            (f", {tp.precision} training" if tp.precision != "float32" else "")
        tag = f", seed {seed}" if len(a.seeds) > 1 else ""
        rows.append(f"| stage 2 from {init}, {steps} steps{kept}{tag} | {ms(d)} | {secs / 60:.1f} min |")
        if a.tta:  # the same network, its predictions averaged over the 8 flips and rotations
            model.tta = True
            t0 = time.perf_counter()
            d = [dice_pct(model.predict(img[i]), lab[i]) for i in test]
            means_tta.append(float(np.mean(d)))
            per = (time.perf_counter() - t0) / len(test)
            rows.append(f"| the same, predicted with 8-view TTA{tag} | {ms(d)} | {per:.2f} s per test image |")
    if len(a.seeds) > 1:
        rows.append(seeds_row(f"stage 2 `{v}`: mean ± sd over seeds {', '.join(map(str, a.seeds))}", means))
        if means_tta:
            rows.append(seeds_row("the same with TTA: mean ± sd over seeds", means_tta))
    return rows


def train_rounds(rounds: int, tp, images, truth, res, known, keep, rows: list[str]):
    """Stage 2 on stage 1's pseudo-labels; each further round (self-training) trains a new network on the previous
    one's labels of the train images (the engine's ``relabel``), the ``keep`` pixels keeping theirs, round by round
    as ``TrainParams.rounds`` does, so that each round's labels can be scored against ``truth`` into ``rows``."""
    from napari_fewcell.engine import run, train_iter
    from napari_fewcell.engine.partial.stage2 import relabel

    labels = res.labels
    model = run(train_iter(images, labels, known=known, params=tp, confidence=res.confidence))
    for r in range(1, rounds):
        labels = [relabel(model, im, q, k) for im, q, k in zip(images, labels, keep)]
        rows.append(f"| (round {r} network's labels of the train images: "
                    f"{ms([dice_pct(q, t) for q, t in zip(labels, truth)])}) | | |")
        model = run(train_iter(images, labels, params=tp))  # every pixel now has a label, as in the engine
    return model


@contextlib.contextmanager
def warp_order(order: int | None):
    """Stage 2's elastic warp interpolating the image by splines of ``order`` for the duration (None: the engine's,
    cubic since 2026-12-07; the reports of that day without ``order`` in their variants interpolated linearly)."""
    from napari_fewcell.engine.partial import stage2

    if order is None:
        yield
        return
    engine = stage2.elastic
    stage2.elastic = functools.partial(engine, order=order)
    try:
        yield
    finally:
        stage2.elastic = engine


def seeds_row(label: str, means: list[float]) -> str:
    """A report row: the mean ± sd of one variant's test Dice over seeds, with the lowest and highest."""
    return (f"| **{label}** | **{np.mean(means):.2f} ± {np.std(means, ddof=1):.2f}** (min {min(means):.2f}, max "
            f"{max(means):.2f}) | |")


if __name__ == "__main__":
    main()
