#!/usr/bin/env python
"""Stage 1 of workflow 2 labels the images on the path its held-out choice checked, instead of checking the paths
again on all the boxes: are the pseudo-labels the same, and how much sooner? Runs stage 1 as the product does (one
centre 64×64 box per train image, fine-tuning, the held-out choice), then labels every train image with the chosen
network twice: reusing the choice's self-check of the paths (the engine since 2026-12-07) and making the self-check
anew on every box (the engine before). Reports both labellings' time, the path each took, their pseudo-labels' Dice
and the share of pixels they agree on. Run it alone: it reports times.

    python studies/probe_choice_reuse.py --data ../shared/data --dataset isbi2012_membrane \\
        --weights weights/lodo_isbi_episodic.pt --out results/choice_reuse_lodo_isbi.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import time

import numpy as np
from bench_partial import stage1_study
from common import dice_pct, finish_report, log, report_header


def label_twice(res, data, params) -> list[tuple]:
    """(how, seconds, path, labels) of labelling every image with the chosen network, the choice's estimates reused
    and not."""
    from napari_fewcell.engine import run
    from napari_fewcell.engine.partial.pseudo import label_all
    from napari_fewcell.engine.prompt import segmenter

    paths, engine = [], segmenter.Segmenter.adapt_iter

    def adapt_iter(self, prompt, known=None):
        ad = yield from engine(self, prompt, known)
        paths.append(ad.path)
        return ad

    segmenter.Segmenter.adapt_iter = adapt_iter
    out = []
    try:
        for how, estimates in (("reused (the engine)", res.labeller["estimates"]), ("checked anew (before)", None)):
            t0 = time.perf_counter()
            labels, _ = run(label_all(data, res.classes, params, res.model, "cpu", res.labeller["path"], estimates))
            out.append((how, time.perf_counter() - t0, paths[-1], labels))
    finally:
        segmenter.Segmenter.adapt_iter = engine
    return out


def main() -> None:
    a, ds, data = stage1_study(__doc__)
    from napari_fewcell.engine import PseudoParams, pseudolabel_iter, run
    from napari_fewcell.engine.partial import describe_labeller

    params = PseudoParams(weights=a.weights, device="cpu")
    log("stage 1")
    t0 = time.perf_counter()
    res = run(pseudolabel_iter(data, params))
    stage1 = time.perf_counter() - t0
    runs = label_twice(res, data, params)
    rows = []
    for how, secs, path, labels in runs:
        dice = np.mean([dice_pct(q, ds.labels[i]) for q, i in zip(labels, ds.train)])
        same = np.mean([np.mean(q == r) for q, r in zip(labels, runs[0][3])])
        rows.append(f"| {how} | {secs:.1f} s | {path} | {dice:.2f} | {100 * same:.3f} |")
    lines = report_header(f"Labelling with the choice's self-check reused, on `{a.dataset}`", False) + [
        f"- weights `{a.weights}`; train images {ds.train[0]}–{ds.train[-1]} ({len(ds.train)}), one centre 64×64 "
        "box each", f"- stage 1 as the engine runs it (reusing): {stage1:.0f} s, {len(res.history) - 1} epochs; "
        f"{describe_labeller(res.labeller)}; the choice's estimates {res.labeller['estimates']}", "",
        "| labelling every train image | time | path | pseudo-labels Dice (%) | pixels as the engine's (%) |",
        "|---|---|---|---|---|", *rows, ""]
    finish_report(lines, a.out)


if __name__ == "__main__":
    main()
