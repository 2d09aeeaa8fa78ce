#!/usr/bin/env python
"""Does a correction stroke fix its own image if only the changes connected to it are kept? (issue 20, "one
correction stroke"; a study on TRAIN images, leave one data set out with study_strokes.py's weights, boxes and
stroke rule.) Per box: the one-box result on its own image, the box + the stroke (``stroke_use`` "both", the
default), and the *local* result: the one-box result where only the changed pixels 8-connected to the stroke take
the new labels (optionally within --radius px of it). Scored on the corrected image, the stroke's pixels left out.

    python studies/study_local_strokes.py --data ../shared/data --boxes 6 --out results/local_strokes_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse
import copy
import time

import numpy as np
from boxes_prompts import seeded_triple
from common import BOX, Dataset, dice_pct, finish_report, log, report_header, seeded_box, set_threads
from scipy import ndimage as ndi
from strokes import add_check_strokes_option, correction_stroke
from study_strokes import FOLDS

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.prompt.params import STROKE_USES


def local(before: np.ndarray, after: np.ndarray, stroke: np.ndarray, radius: int | None,
          value: int | None = None, allowed: np.ndarray | bool = True) -> np.ndarray:
    """``before`` with the pixels of ``after`` that changed and are 8-connected to the stroke (within ``radius``;
    ``value``: only the changes to the stroke's class; ``allowed``: only the changes where it is True)."""
    changed = ((before != after) & (True if value is None else after == value) & allowed) | stroke
    if radius:
        changed &= ndi.distance_transform_edt(~stroke) <= radius
    lab, _ = ndi.label(changed, structure=np.ones((3, 3), bool))
    keep = np.isin(lab, np.unique(lab[stroke]))
    return np.where(keep, after, before)


OTHERS = ("others: both", "others: both if the check holds")
UNSURE = (0.8, 0.9)  #: variants: a change is kept only where the one-box result's winning probability is below this
SURE = (0.6, 0.8)  #: variants: a change is kept only where the new result's winning probability is at least this
CHECK_DROP = 0.01  #: the box's self-check may fall by this much with the stroke


def gated_reach(radii) -> int:
    """The reach (0: no limit) of the confidence-gated variants and of the check-gated ones: the second radius given,
    else the only one."""
    return radii[1] if len(radii) > 1 else radii[0]


def one_box(ds: Dataset, seed: int, model, weights: str, radii, others: int,
            check_strokes: bool = True, stroke_use: str = "both", triples: bool = False) -> dict | None:
    if triples:  # bench_boxes.py's one-box prompt: the first box of its seeded triple
        src, ((y, x), *_) = seeded_triple(seed, ds)
    else:
        src, y, x = seeded_box(seed, ds, 0.05, 0.95)
    box = (y, x, BOX, BOX)
    img, lab = ds.images[src], ds.labels[src]
    seg = Segmenter(PromptParams(weights=weights, device="cpu"), model=copy.deepcopy(model))
    prompt = seg.prepare_prompt_boxes(img, lab, [box])
    pred, conf = run(seg.segment_iter(img, prompt, confidence=True))
    stroke = correction_stroke(pred, lab, (y, x))
    if stroke["mask"] is None:
        return None
    keep = ~stroke["mask"]
    seg2 = Segmenter(PromptParams(weights=weights, device="cpu", check_strokes=check_strokes,
                                  stroke_use=stroke_use), model=copy.deepcopy(model))
    prompt2 = seg2.prepare_prompt_boxes(img, lab, [box], corrections=stroke["corrections"])
    after, conf2 = run(seg2.segment_iter(img, prompt2, confidence=True))
    out = {"one box": dice_pct(pred[keep], lab[keep]), "both": dice_pct(after[keep], lab[keep])}
    for r in radii:
        loc = local(pred, after, stroke["mask"], r or None)
        out[f"local {r or '∞'}"] = dice_pct(loc[keep], lab[keep])
    r0 = gated_reach(radii)
    for c in UNSURE:  # only what the one-box result was unsure of may change
        loc = local(pred, after, stroke["mask"], r0 or None, allowed=conf.astype(np.float32) < c)
        out[f"local {r0 or '∞'}, one box's confidence < {c}"] = dice_pct(loc[keep], lab[keep])
    for c in SURE:  # only what the result with the stroke is sure of may change
        loc = local(pred, after, stroke["mask"], r0 or None, allowed=conf2.astype(np.float32) >= c)
        out[f"local {r0 or '∞'}, new confidence ≥ {c}"] = dice_pct(loc[keep], lab[keep])
    value = int(stroke["corrections"][stroke["mask"]][0])
    for r in radii:
        loc = local(pred, after, stroke["mask"], r or None, value)
        out[f"local {r or '∞'}, stroke's class"] = dice_pct(loc[keep], lab[keep])
    # the box's own held-out check with and without the stroke (the stroke is learnt from, never scored)
    est, est2 = prompt.check.get(prompt.path), prompt2.check.get(prompt2.path)
    drop = 0.0 if est is None or est2 is None else est - est2  # no estimate (BoxData.fair): the check holds
    loc = out[f"local {r0 or '∞'}"]
    out["local if the check holds"] = loc if drop <= CHECK_DROP else out["one box"]
    out["both if the check holds, else local"] = out["both"] if drop <= CHECK_DROP else loc
    out["check drop"] = 100 * drop
    scored = [i for i in ds.train if i != src][:others]
    if scored:  # other images: the stroke changes them only where it is learnt from globally
        base = np.mean([dice_pct(seg.segment(ds.images[i], prompt), ds.labels[i]) for i in scored])
        glob = np.mean([dice_pct(seg2.segment(ds.images[i], prompt2), ds.labels[i]) for i in scored])
        out["others: both"] = glob - base
        out["others: both if the check holds"] = (glob - base) if drop <= CHECK_DROP else 0.0
    out["path switched"] = float(prompt.path != prompt2.path)
    log(f"{ds.name} box {seed} ({src}), {prompt.path} → {prompt2.path}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in out.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--folds", nargs="+", default=list(FOLDS))
    ap.add_argument("--boxes", type=int, default=6)
    ap.add_argument("--radii", type=int, nargs="+", default=[0, 64, 32], help="0: no limit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=0, help="other train images scored per box (0: none)")
    add_check_strokes_option(ap)
    ap.add_argument("--stroke-use", default=PromptParams.stroke_use, choices=STROKE_USES,
                    help="PromptParams.stroke_use of the prompt with the stroke")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the boxes' seeds are FIRST_SEED .. FIRST_SEED + BOXES - 1")
    ap.add_argument("--triples", action="store_true",
                    help="the boxes of bench_boxes.py (the first of each seeded triple) instead of seeded boxes")
    ap.add_argument("--out", default="results/local_strokes_val.md")
    a = ap.parse_args()
    set_threads(a.threads)
    t0 = time.perf_counter()
    r0 = gated_reach(a.radii)
    names = ["both", *[f"local {r or '∞'}" for r in a.radii], *[f"local {r or '∞'}, stroke's class" for r in a.radii],
             *[f"local {r0 or '∞'}, one box's confidence < {c}" for c in UNSURE],
             *[f"local {r0 or '∞'}, new confidence ≥ {c}" for c in SURE],
             "local if the check holds",
             "both if the check holds, else local"]
    cols = list(OTHERS) if a.images else []
    rows = []
    for fold in a.folds:
        name, _, folder = fold.partition(":")
        ds = Dataset(a.data, name, folder=folder or "labels")
        model = load_model(FOLDS[fold])
        runs = [r for r in (one_box(ds, s, model, FOLDS[fold], a.radii, a.images, a.check_strokes == "learn",
                                          a.stroke_use, a.triples)
                                  for s in range(a.first_seed, a.first_seed + a.boxes)) if r]
        d = {k: np.array([r[k] - r["one box"] for r in runs]) for k in names}
        d.update({k: np.array([r[k] for r in runs]) for k in OTHERS if a.images})
        rows.append(f"| {fold} | {len(runs)} | {sum(r['path switched'] for r in runs):.0f} | "
                    f"{np.mean([r['one box'] for r in runs]):.2f} | "
                    + " | ".join(f"{d[k].mean():+.2f} (min {d[k].min():+.2f})" for k in names + cols) + " |")
    rep = report_header("A correction stroke kept local (train images only)", False) + [
        f"- per fold {a.boxes} seeded boxes on train images (seeds {a.first_seed}–{a.first_seed + a.boxes - 1})"
        + (" (bench_boxes.py's: the first box of each seeded triple)" if a.triples else "")
        + ", bench_boxes.py's stroke rule; the corrected image "
        "scored with the stroke's pixels left out; default path (auto); Dice % = mean of fg and bg Dice; change "
        "against the one-box result, mean over boxes (and the worst box)",
        f"- the prompt with the stroke: PromptParams(check_strokes={a.check_strokes == 'learn'}, "
        f"stroke_use={a.stroke_use!r}) (the self-check's "
        "fits " + ("learn from the stroke too)" if a.check_strokes == "learn" else "read the box alone)"),
        f"- wall time {time.perf_counter() - t0:.0f} s", "",
        "| fold | boxes with a stroke | auto's path switched by the stroke | one box | "
        + " | ".join(f"+ stroke ({k}) − one box" for k in names)
        + "".join(f" | {k} − one box ({a.images} other images)" for k in cols) + " |",
        "|---" * (4 + len(names) + len(cols)) + "|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
