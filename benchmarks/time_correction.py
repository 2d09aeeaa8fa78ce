#!/usr/bin/env python
"""The time of a correction round (one stroke, then Segment again) with the boxes' self-check reused or made anew.

Since 2026-12-06 the self-check reads the boxes alone (``PromptParams.check_strokes`` False), so a segmenter keeps
its estimates per boxes and a correction round skips the check's forests. Per set: bench_prompt.py's seeded 64×64
box (seed 0) on a train image, the one-box result on that image, one stroke on its largest wrong component
(strokes.py, as bench_boxes.py); then the round as the widget runs it (``segment_job`` with the stroke and the
result it corrects: prompt, adaptation, the image, the local change), timed ``--repeats`` times with the check
reused (the widget's segmenter, which made the one-box result) and as many with it made anew (a segmenter with
the same network and an empty cache), alternating. Alone on the machine; model loaded; seconds.

    python time_correction.py --data ../shared/data --out results/correction_round.md
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from bench_prompt import BOX, pick_box
from common import Dataset, finish_report, log, report_header, set_threads
from strokes import correction_stroke

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.prompt import PromptParams, Segmenter, SegmentRequest, segment_job

SETS = {"isbi2012_membrane": (1 / BOX**2, 1 - 1 / BOX**2), "usiigaci_phase_contrast_cells": (0.05, 0.95)}


def one_set(a, name: str, lo: float, hi: float) -> str:
    ds = Dataset(a.data, name)
    src, y, x = pick_box(0, ds, lo, hi)
    img, lab = ds.images[src], ds.labels[src]
    box = (y, x, BOX, BOX)
    seg = Segmenter(PromptParams())
    before = run(segment_job(SegmentRequest(img, lab, [box], [img]), seg)).labels[0]
    stroke = correction_stroke(before, lab, (y, x))
    request = SegmentRequest(img, lab, [box], [img], corrections=stroke["corrections"],
                             corrected=[(before, stroke["corrections"])])
    times = {"reused": [], "anew": []}
    for _ in range(a.repeats):
        for how in times:
            use = seg if how == "reused" else Segmenter(PromptParams(), model=seg.model)
            t0 = time.perf_counter()
            result = run(segment_job(request, use))
            times[how].append(time.perf_counter() - t0)
    log(f"{name}: " + ", ".join(f"{k} {np.median(v):.2f} s" for k, v in times.items()))
    return (f"| {name} | {img.shape[0]}×{img.shape[1]} | {src} ({y}, {x}) | {stroke['stroke_px']} | "
            f"{result.prompt.path} | {np.median(times['reused']):.2f} ({min(times['reused']):.2f}–"
            f"{max(times['reused']):.2f}) | {np.median(times['anew']):.2f} ({min(times['anew']):.2f}–"
            f"{max(times['anew']):.2f}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/correction_round.md")
    a = ap.parse_args()
    set_threads(a.threads)
    rows = [one_set(a, name, lo, hi) for name, (lo, hi) in SETS.items()]
    rep = report_header("A correction round: the boxes' self-check reused or made anew", False, ("sklearn",)) + [
        f"- per set: bench_prompt's box (seed 0) on a train image, one stroke (strokes.py) on the one-box result; "
        f"the round = `segment_job` with the stroke and the corrected result (shipped weights, default path, "
        f"`stroke_reach` local); median (min–max) of {a.repeats} rounds each, alternating; model loaded",
        "", "| set | image | box (source, y, x) | stroke px | path | round, check reused (s) | "
        "round, check made anew (s) |",
        "|---|---|---|---|---|---|---|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
