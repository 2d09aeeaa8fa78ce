#!/usr/bin/env python
"""What should learn from a correction stroke (``PromptParams.stroke_use``; issue 20, "one correction stroke")? A
study on TRAIN images only, leave one data set out with bench_boxes.py's weights: per fold, seeded 64×64 boxes on
train images (``common.seeded_box``, 5–95 % foreground), the one-box result on its own image, one simulated stroke
on its largest wrong region (``strokes.correction_stroke``, bench_boxes.py's rule), then the box + the stroke with
each ``stroke_use``. Scored on up to --images other train images (mean of fg and bg Dice %) and on the corrected
image itself, the stroke's pixels left out. The RF on the box, and on the box + the stroke, is beside it.

    python studies/study_strokes.py --data ../shared/data --boxes 6 --out results/strokes_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse
import copy
import time

import numpy as np
from common import BOX, Dataset, RFBaseline, dice_pct, finish_report, log, report_header, seeded_box, set_threads
from strokes import correction_stroke

from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter

SHIPPED = "../src/napari_fewcell/weights/fewcell_embed_v1.pt"
FOLDS = {"isbi2012_membrane": "weights/lodo_isbi_episodic.pt",
         "usiigaci_phase_contrast_cells": "weights/lodo_usiigaci_reptile_warm.pt",
         "tem_myelinated_axons": "weights/lodo_tem_reptile_warm.pt", "tem_myelinated_axons:labels_myelin": SHIPPED,
         "dsb2018_he": "weights/lodo_dsb2018he_episodic.pt", "coelho2009_nih3t3_nuclei": SHIPPED,
         "isbi2014_cervical_synth_cells": SHIPPED}
USES = ("both", "attention", "forest")


def one_box(ds: Dataset, seed: int, model, weights: str, others: int, uses, rf: RFBaseline) -> dict:
    """Dice % of one box, of the box + the stroke per use, and of the RF, on other train images and on the own
    image (stroke pixels left out)."""
    src, y, x = seeded_box(seed, ds, 0.05, 0.95)
    box = (y, x, BOX, BOX)
    img, lab = ds.images[src], ds.labels[src]
    scored = [i for i in ds.train if i != src][:others]

    def seg_for(use):
        return Segmenter(PromptParams(weights=weights, device="cpu", stroke_use=use), model=copy.deepcopy(model))

    seg = seg_for("both")
    prompt = seg.prepare_prompt_boxes(img, lab, [box])
    pred = seg.segment(img, prompt)
    stroke = correction_stroke(pred, lab, (y, x))
    if stroke["mask"] is None:
        return {}
    keep = ~stroke["mask"]
    out = {"one box": ([dice_pct(seg.segment(ds.images[i], prompt), ds.labels[i]) for i in scored],
                       dice_pct(pred[keep], lab[keep]), prompt.path)}
    for use in uses:
        s = seg_for(use)
        p = s.prepare_prompt_boxes(img, lab, [box], corrections=stroke["corrections"])
        own = s.segment(img, p)
        out[use] = ([dice_pct(s.segment(ds.images[i], p), ds.labels[i]) for i in scored],
                    dice_pct(own[keep], lab[keep]), p.path)
    feat = rf.features(img)
    inbox = np.zeros(lab.shape, bool)
    inbox[y : y + BOX, x : x + BOX] = True
    for name, m in (("RF", inbox), ("RF + stroke", inbox | stroke["mask"])):
        clf = rf.forest(feat[m], lab[m])
        out[name] = ([dice_pct(rf.predict(clf, rf.cached(i, ds.images[i])[0]), ds.labels[i]) for i in scored],
                     dice_pct(rf.predict(clf, feat)[keep], lab[keep]), "")
    log(f"{ds.name} box {seed} ({src}): " + ", ".join(f"{k} {np.mean(v[0]):.1f}/{v[1]:.1f} {v[2]}"
                                                       for k, v in out.items()))
    return out


def fold_rows(fold: str, a) -> list[str]:
    name, _, folder = fold.partition(":")
    ds = Dataset(a.data, name, folder=folder or "labels")
    weights = FOLDS[fold]
    model, rf = load_model(weights), RFBaseline(a.threads)
    runs = [r for r in (one_box(ds, s, model, weights, a.images, a.uses, rf) for s in range(a.boxes)) if r]
    methods = ["one box", *a.uses, "RF", "RF + stroke"]
    val = {m: np.array([np.mean(r[m][0]) for r in runs]) for m in methods}
    own = {m: np.array([r[m][1] for r in runs]) for m in methods}
    diff = lambda d, m, base: f"{np.mean(d[m] - d[base]):+.2f}"  # noqa: E731
    return [f"| {fold} | {len(runs)} | {val['one box'].mean():.2f} | "
            + " | ".join(diff(val, u, "one box") for u in a.uses) + f" | {diff(val, 'RF + stroke', 'RF')} | "
            + f"{own['one box'].mean():.2f} | " + " | ".join(diff(own, u, "one box") for u in a.uses)
            + f" | {diff(own, 'RF + stroke', 'RF')} |"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--folds", nargs="+", default=list(FOLDS))
    ap.add_argument("--boxes", type=int, default=6)
    ap.add_argument("--images", type=int, default=4, help="other train images scored per box")
    ap.add_argument("--uses", nargs="+", default=list(USES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/strokes_val.md")
    a = ap.parse_args()
    set_threads(a.threads)
    t0 = time.perf_counter()
    rows = [r for f in a.folds for r in fold_rows(f, a)]
    uses = " | ".join(f"+ stroke ({u}) − one box" for u in a.uses)
    rep = report_header("What learns from a correction stroke (train images only)", False) + [
        f"- per fold {a.boxes} seeded boxes on train images; scored on {a.images} other train images and on the "
        "corrected image (the stroke's pixels left out); default path (auto); Dice % = mean of fg and bg Dice",
        f"- wall time {time.perf_counter() - t0:.0f} s", "",
        f"| fold | boxes with a stroke | other images: one box | {uses} | RF + stroke − RF | corrected image: "
        f"one box | {uses} | RF + stroke − RF |", "|---" * (6 + 2 * len(a.uses)) + "|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
