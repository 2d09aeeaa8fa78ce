"""How much a correction pixel should count in the attention (``PromptParams.stroke_weight``), chosen on TRAIN
images only: per set, seeded 64×64 boxes on train images; the one-box result on the prompt image gives the
stroke (``strokes.correction_stroke``, the rule of bench_boxes.py: a brush of radius 2 px along the skeleton of the
largest wrong region outside the box, at most 150 px of skeleton; the reports in results/stroke_*_val.md were made
with an earlier copy of it that took 4-connected regions and a diamond brush); the prompt
with the stroke is scored on other train images (mean of fg and bg Dice %). With
``--band R``, a last column adds to the stroke (weight 1) the band of pixels within R px of it that the user left
unchanged, labelled with the one-box result (the issue's "band of already-correct result pixels").

    python benchmarks/studies/choose_stroke_weight.py --data ../shared/data \\
        --out benchmarks/results/stroke_weight_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse

import numpy as np
from common import BOX, Dataset, dice_pct, finish_report, log, report_header, seeded_box, set_threads
from scipy import ndimage as ndi
from strokes import correction_stroke

from napari_fewcell.engine.prompt import PromptParams, Segmenter

SETS = {"isbi2012_membrane": "weights/lodo_isbi_episodic.pt", "usiigaci_phase_contrast_cells": None,
        "tem_myelinated_axons": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--boxes", type=int, default=3)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--weights-to-try", type=float, nargs="+", default=[1, 4, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--band", type=int, default=0)
    ap.add_argument("--part-pixels", type=int, default=None, help="at most this many pixels kept per stroke")
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--out", default="results/stroke_weight_val.md")
    a = ap.parse_args()
    set_threads(a.threads)
    if a.part_pixels:
        from napari_fewcell.engine.prompt import corrections

        corrections.PART_PIXELS = a.part_pixels
    rep = report_header("Correction stroke weight (train images only)", False)
    rep += ["", "| set | adapt | one box | " + " | ".join(f"+ stroke, weight {w:g}" for w in a.weights_to_try) +
            (f" | + stroke + {a.band}-px band, weight 1" if a.band else "") + " | stroke px (mean) |",
            "|---" * (4 + len(a.weights_to_try) + bool(a.band)) + "|"]
    for name in a.sets:
        weights = SETS[name]
        ds = Dataset(a.data, name)
        for adapt in ("none", "auto"):
            rows, px = [], []
            for seed in range(a.boxes):
                src, y, x = seeded_box(seed, ds, 0.05, 0.95)
                box = (y, x, BOX, BOX)
                others = [i for i in ds.train if i != src][: a.images]
                seg = Segmenter(PromptParams(weights=weights, adapt=adapt))
                one = seg.prepare_prompt_boxes(ds.images[src], ds.labels[src], [box])
                pred = seg.segment(ds.images[src], one)
                corr = correction_stroke(pred, ds.labels[src], (y, x))["corrections"]
                corr = np.full(pred.shape, -1, np.int32) if corr is None else corr
                px.append(int((corr >= 0).sum()))
                row = [np.mean([dice_pct(seg.segment(ds.images[i], one), ds.labels[i]) for i in others])]
                for w in a.weights_to_try:
                    sw = Segmenter(PromptParams(weights=weights, adapt=adapt, stroke_weight=w), model=seg.model)
                    p = sw.prepare_prompt_boxes(ds.images[src], ds.labels[src], [box], corrections=corr)
                    row.append(np.mean([dice_pct(sw.segment(ds.images[i], p), ds.labels[i]) for i in others]))
                if a.band:
                    stroke = corr >= 0
                    band = ndi.binary_dilation(stroke, iterations=a.band) & ~stroke
                    banded = np.where(band, pred.astype(np.int32), corr)
                    sw = Segmenter(PromptParams(weights=weights, adapt=adapt, stroke_weight=1), model=seg.model)
                    p = sw.prepare_prompt_boxes(ds.images[src], ds.labels[src], [box], corrections=banded)
                    row.append(np.mean([dice_pct(sw.segment(ds.images[i], p), ds.labels[i]) for i in others]))
                rows.append(row)
                log(f"{name} {adapt} box {seed}: {np.round(row, 2)}")
            m = np.mean(rows, 0)
            rep.append(f"| {name} | {adapt} | {m[0]:.2f} | " + " | ".join(f"{v:.2f}" for v in m[1:]) +
                       f" | {np.mean(px):.0f} |")
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
