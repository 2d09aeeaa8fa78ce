#!/usr/bin/env python
"""Benchmark of workflow 2 — partial labels → pseudo-labels → a network trained on them (paper 000 §3.3).

Paper protocol: the train images keep one fixed 64×64 box of labels each (the centre box);
stage 1 fine-tunes the embedding network and labels every train image (pseudo-label Dice
against the true labels is reported, with the attention-only labels of the un-tuned network
beside it); stage 2 trains a fresh U-Net from scratch on the pseudo-labels and is scored
on the test images. The upper bound trains the same U-Net, same steps, on the full labels.
Test images are only ever scored. Writes a Markdown report; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from common import (
    BOX,
    Dataset,
    RFBaseline,
    command_line,
    dice_pct,
    log,
    mean_sd,
    nproc,
    set_threads,
    sha12,
    utc_now,
    vm_hwm_gb,
    write_report,
)


def ms(values) -> str:
    return mean_sd(values, ddof=0)  # this report's sd is over the images themselves


def fold_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a study on one fold's train images (--data, --dataset, --train-limit, --weights,
    --threads), ``doc`` its help."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="isbi2012_membrane")
    ap.add_argument("--train-limit", type=int, default=15)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def stage1_study(doc: str):
    """A stage-1 study's start: its command line (:func:`fold_parser` and --out) parsed and its threads set, and the
    fold's train images, each annotated with its centre 64×64 box. Returns (args, Dataset, annotated images)."""
    ap = fold_parser(doc)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(a.threads)
    from napari_fewcell.engine import annotate

    ds = Dataset(a.data, a.dataset, train_limit=a.train_limit)
    return a, ds, [annotate(ds.images[i], ds.labels[i], [centre_box(ds.images[i].shape)], name=i) for i in ds.train]


def centre_box(shape) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    return (h - BOX) // 2, (w - BOX) // 2, BOX, BOX


def boxes_prompt(seg, img: dict, lab: dict, boxes: dict, train: list):
    """One prompt of every ``train`` image's box ({id: (y, x, h, w)}), in that order, as a user paints them."""
    first = train[0]
    return seg.prepare_prompt_boxes(img[first], lab[first], [boxes[first]],
                                    more=[(img[i], lab[i], [boxes[i]]) for i in train[1:]])


def one_shot(weights: str, img: dict, lab: dict, boxes: dict, train: list, ids: list) -> tuple[dict, float]:
    """Workflow 1 from the same boxes, as a user would run it on the same images: every train image's box is
    the prompt (one prompt: boxes of several images), default path (``auto``: the self-check holds each box out).
    Returns {id: labels} for ``ids`` and the prompt's preparation time."""
    from napari_fewcell.engine import PromptParams, Segmenter

    seg = Segmenter(PromptParams(weights=weights, device="cpu"))
    t0 = time.perf_counter()
    prompt = boxes_prompt(seg, img, lab, boxes, train)
    seg.adapt(prompt)
    log(f"one-shot: path {prompt.path}, check {prompt.check}")
    return {i: seg.segment(img[i], prompt) for i in ids}, time.perf_counter() - t0


def forest_on_boxes(img: dict, lab: dict, boxes: dict, train: list, ids: list, threads: int) -> dict:
    """The RF baseline (ilastik-style filters, 100 trees) fitted on the pixels of every train image's box."""
    rf = RFBaseline(threads)
    X, y = [], []
    for i in train:
        by, bx, h, w = boxes[i]
        feat = rf.features(img[i])
        X.append(feat[by : by + h, bx : bx + w].reshape(-1, feat.shape[-1]))
        y.append(lab[i][by : by + h, bx : bx + w].reshape(-1))
    clf = rf.forest(np.concatenate(X), np.concatenate(y))
    return {i: rf.predict(clf, rf.features(img[i])) for i in ids}


def candidate_rows(res, data, pp, img: dict, lab: dict, train: list) -> list[str]:
    """Rows: the train images' Dice as the fine-tuned network (whether or not stage 1 chose it) would label them on
    attention alone (the candidate stage 1 weighed against the pre-trained network on the default path, which is
    the one-shot row) and on the default path (for comparison)."""
    from napari_fewcell.engine import run
    from napari_fewcell.engine.partial.pseudo import label_all

    if res.finetuned is None:
        return ["| (fine-tuning kept the pre-trained network: no fine-tuned candidate) | | |"]
    rows = []
    for path in dict.fromkeys(("none", pp.adapt)):
        labels, _ = run(label_all(data, res.classes, pp, res.finetuned, "cpu", path))
        d = [dice_pct(p, lab[i]) for p, i in zip(labels, train)]
        rows.append(f"| fine-tuned network's labels ({path}), train images | {ms(d)} | |")
    return rows


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="isbi2012_membrane")
    ap.add_argument("--train-limit", type=int, default=15, help="first N train images (ISBI: 000–014)")
    ap.add_argument("--weights", default=None, help="pre-trained embedding weights (default: shipped)")
    ap.add_argument("--weights-label", default="shipped")
    ap.add_argument("--epochs", type=int, default=None, help="stage-1 epochs (default: the engine's)")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--dice-weight", type=float, default=None)
    ap.add_argument("--train-steps", type=int, default=None)
    from napari_fewcell.engine.partial.params import INITS

    ap.add_argument("--stage2-init", choices=INITS, default=None,
                    help="stage 2 from scratch or from the embedding weights (default: the engine's)")
    ap.add_argument("--ignore-below", type=float, default=0.0,
                    help="stage 2 ignores pseudo-labelled pixels whose attention confidence is below this")
    ap.add_argument("--upper-bound", action="store_true", help="also train on the full labels (same steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 train / 2 test images, tiny budgets")
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", action="append", default=[])
    return ap.parse_args()


def stage_params(a, weights: str):
    """Stage-1 and stage-2 parameters from the command line (tiny budgets with --quick)."""
    from napari_fewcell.engine import PseudoParams, TrainParams

    pp = PseudoParams(weights=weights, device="cpu")
    if a.epochs is not None:
        pp.epochs = a.epochs
    if a.quick:
        pp.epochs, pp.steps_per_epoch = 1, 3
    if a.lr is not None:
        pp.lr = a.lr
    if a.dice_weight is not None:
        pp.dice_weight = a.dice_weight
    # from the embedding weights: the fold's own, never the shipped; --ignore-below is the engine's min_confidence
    tp = TrainParams(device="cpu", weights=weights, min_confidence=a.ignore_below)
    if a.train_steps is not None:
        tp.steps = a.train_steps
    if a.stage2_init is not None:
        tp.init = a.stage2_init
    if a.quick:
        tp.steps = 20
    return pp, tp


def header_lines(a, weights: str, seen: set, train: list, test: list, frac: float, pp, tp) -> list[str]:
    """The report's title and set-up lines."""
    import torch

    return [
        f"### Partial labels on `{a.dataset}` — weights: {a.weights_label}",
        "",
        f"- {utc_now()}, `nproc` {nproc()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; weights `{Path(weights).name}` sha256 {sha12(weights)}; "
        f"images seen in pre-training (full labels): {len(seen & set(train))} of the {len(train)} train images, "
        f"0 of the {len(test)} test images",
        f"- train images {train[0]}–{train[-1]} ({len(train)}), each with one centre 64×64 box of labels "
        f"({100 * frac:.2f} % of the pixels); test images {test[0]}–{test[-1]} ({len(test)})",
        f"- stage 1: {pp.epochs} epochs, lr {pp.lr}, dice weight {pp.dice_weight}; stage 2: U-Net "
        f"{'from scratch' if tp.init == 'scratch' else 'starting from the embedding weights'}, "
        f"{tp.rounds} round(s) of {tp.steps} steps × {tp.batch} crops of {tp.crop}², {tp.precision} precision, no TTA"
        + (f", pixels with confidence < {a.ignore_below} ignored" if a.ignore_below > 0 else ""),
        f"- command: `{command_line()}`",
        *[f"- {n}" for n in a.note],
        "",
    ]


def checked_weights(a, test: list) -> tuple[str, set]:
    """The weights file and the fold's images it was trained on (none may be a test image)."""
    from napari_fewcell.engine.nets.unet import default_weights_path, load_model

    weights = a.weights or str(default_weights_path())
    card = load_model(weights).card
    seen = set()
    for c in (card, card.get("init_card") or {}, (card.get("init_card") or {}).get("init_card") or {}):
        seen |= set((c.get("training_images") or {}).get(a.dataset, []))
    assert not seen & set(test), "a test image is among the weights' training images"
    return weights, seen


def stage2(res, img: dict, lab: dict, train: list, test: list, tp, keep=None):
    """Stage 2 on the pseudo-labels, self-training rounds keeping the ``keep`` pixels (the annotated ones): (test
    images' Dice, training seconds, seconds to predict one, peak GB)."""
    from napari_fewcell.engine import run, train_iter

    log(f"stage 2: {tp.steps} steps on the pseudo-labels")
    t0 = time.perf_counter()
    model = run(train_iter([img[i] for i in train], res.labels, params=tp, confidence=res.confidence, keep=keep))
    t2 = time.perf_counter() - t0
    test_d = [dice_pct(model.predict(img[i]), lab[i]) for i in test]
    t0 = time.perf_counter()
    model.predict(img[test[0]])
    return test_d, t2, time.perf_counter() - t0, vm_hwm_gb()


def upper_bound_row(img: dict, lab: dict, train: list, test: list, tp) -> str:
    """The same stage 2 trained on the full labels, as a report row."""
    from napari_fewcell.engine import run, train_iter

    log("upper bound: stage 2 on the full labels")
    t0 = time.perf_counter()
    one = dataclasses.replace(tp, rounds=1)  # every pixel is known: a further round would relearn the same labels
    full = run(train_iter([img[i] for i in train], [lab[i] for i in train], params=one))
    tf = time.perf_counter() - t0
    full_d = [dice_pct(full.predict(img[i]), lab[i]) for i in test]
    return f"| upper bound: same U-Net on the full labels, test images | {ms(full_d)} | {tf / 60:.1f} min |"


def main() -> None:
    a = parse_args()
    from napari_fewcell.engine import annotate, pseudolabel_iter, run
    from napari_fewcell.engine.partial import describe_epoch, describe_labeller

    set_threads(a.threads)
    ds = Dataset(a.data, a.dataset, train_limit=3 if a.quick else a.train_limit)
    train, test, img, lab = ds.train, ds.test, ds.images, ds.labels
    if a.quick:
        test = test[:2]
    weights, seen = checked_weights(a, test)
    pp, tp = stage_params(a, weights)

    boxes = {i: centre_box(img[i].shape) for i in train}
    data = [annotate(img[i], lab[i], [boxes[i]], name=i) for i in train]
    frac = np.mean([BOX * BOX / lab[i].size for i in train])
    lines = header_lines(a, weights, seen, train, test, frac, pp, tp)

    log("one-shot from the same boxes (default path), and the RF on all the boxes")
    shot, t_shot = one_shot(weights, img, lab, boxes, train, train + test)
    forest = forest_on_boxes(img, lab, boxes, train, train + test, a.threads)
    shot_train, shot_test = ([dice_pct(shot[i], lab[i]) for i in ids] for ids in (train, test))
    rf_train, rf_test = ([dice_pct(forest[i], lab[i]) for i in ids] for ids in (train, test))

    log(f"stage 1: {pp.epochs} epochs")
    t0 = time.perf_counter()
    res = run(pseudolabel_iter(data, pp), lambda p: log(p.message) if p.done == p.total else None)
    t1 = time.perf_counter() - t0
    pl_d = [dice_pct(p, lab[i]) for p, i in zip(res.labels, train)]
    mem1 = vm_hwm_gb()
    tuned = candidate_rows(res, data, pp, img, lab, train)

    test_d, t2, t_pred, mem2 = stage2(res, img, lab, train, test, tp, keep=[d.known for d in data])

    rows = [
        "| | Dice (%) mean ± sd over images | CPU wall time |",
        "|---|---|---|",
        f"| one-shot from the same boxes (default path), train images | {ms(shot_train)} | {t_shot:.1f} s prompt |",
        f"| one-shot from the same boxes (default path), test images | {ms(shot_test)} | |",
        f"| RF on all the boxes, train images | {ms(rf_train)} | |",
        f"| RF on all the boxes, test images | {ms(rf_test)} | |",
        *tuned,
        f"| **pseudo-labels after stage 1**, train images | **{ms(pl_d)}** | {t1 / 60:.1f} min |",
        f"| **stage 2 on the pseudo-labels**, test images | **{ms(test_d)}** | {t2 / 60:.1f} min |",
    ]
    if a.upper_bound:
        rows.append(upper_bound_row(img, lab, train, test, tp))
    lines += rows + [
        "",
        f"- pseudo-labels − one-shot (train images): {np.mean(pl_d) - np.mean(shot_train):+.2f}; stage 2 − one-shot "
        f"(test images): {np.mean(test_d) - np.mean(shot_test):+.2f}",
        f"- stage 1 + stage 2: {(t1 + t2) / 60:.1f} min; peak memory (VmHWM) {mem1:.2f} GB after stage 1, "
        f"{mem2:.2f} GB after stage 2; predicting one {img[test[0]].shape[0]}×{img[test[0]].shape[1]} "
        f"test image: {t_pred:.2f} s",
        "- stage-1 history: " + "; ".join(describe_epoch(h) for h in res.history),
        f"- {describe_labeller(res.labeller)}",
        "",
    ]
    write_report(lines, a.out)


if __name__ == "__main__":
    main()
