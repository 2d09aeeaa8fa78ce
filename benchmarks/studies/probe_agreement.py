#!/usr/bin/env python
"""Can the image itself tell how good a prompt's result is on it (issue 20, item 4)? A probe: per leave-one-out fold,
seeded 64×64 boxes (bench_generalise.py's), each prompt on attention alone and on the fused path; on every scored image
the two results, their Dice against the truth, and what needs no truth: the two paths' agreement (mean per-class Dice of
one against the other) and each path's mean winning probability. Writes one JSON line per (box, image) for
``studies/fit_agreement.py``, which fits an estimate on the validation lines and scores it on the test lines.

    python studies/probe_agreement.py --data ../shared/data --split val --out results/agreement_val.jsonl
    python studies/probe_agreement.py --data ../shared/data --split test --max-test 6 --out results/agreement_test.jsonl
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse
import json

import bench_generalise as bg
import numpy as np
from common import BOX, Dataset, dice_pct, log, seeded_box, set_threads

from napari_fewcell.engine import PromptParams, Segmenter
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt.adapt import choose

SHIPPED = "../src/napari_fewcell/weights/fewcell_embed_v1.pt"
#: the folds and weights of results/generalise_test_pooled.md (weights that never saw the fold)
FOLDS = {"isbi2012_membrane": "weights/lodo_isbi_episodic.pt", "usiigaci_phase_contrast_cells": SHIPPED,
         "dsb2018_he": "weights/lodo_dsb2018he_episodic.pt", "tem_myelinated_axons": SHIPPED,
         "tem_myelinated_axons:labels_myelin": "weights/classout_myelin_episodic_warm.pt",
         "coelho2009_nih3t3_nuclei": SHIPPED, "isbi2014_cervical_synth_cells": SHIPPED}


def labels_and_confidence(seg: Segmenter, img, prompt) -> tuple[np.ndarray, float]:
    """The labels of ``img`` and the mean probability of the winning class."""
    labels, conf = run(seg.segment_iter(img, prompt, confidence=True))
    return labels, float(np.mean(conf, dtype=np.float64))


def probe_fold(fold: str, weights: str, a, out) -> None:
    set_name, _, folder = fold.partition(":")
    ds = Dataset(a.data, set_name, folder=folder or "labels")
    boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(a.boxes)]
    ids = bg.scored_ids(ds, boxes, a.split, a.max_test)
    model = load_model(weights)
    for b, (src, y, x) in enumerate(boxes):
        segs = {p: Segmenter(PromptParams(adapt=p, weights=weights, device="cpu"), model=model)
                for p in ("none", "fuse")}
        prompt = segs["fuse"].prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
        segs["fuse"].adapt(prompt)
        check = dict(prompt.check)
        for i in ids:
            got = {p: labels_and_confidence(s, ds.images[i], prompt) for p, s in segs.items()}
            row = {"fold": fold, "box": b, "image": i, "check": check, "chosen": choose(check),
                   "agreement": dice_pct(got["none"][0], got["fuse"][0]) / 100,
                   **{f"dice_{p}": dice_pct(g[0], ds.labels[i]) / 100 for p, g in got.items()},
                   **{f"conf_{p}": g[1] for p, g in got.items()},
                   "fg_share": {p: float((g[0] > 0).mean()) for p, g in got.items()}}
            out.write(json.dumps(row) + "\n")
            out.flush()
        log(f"{fold}: box {b + 1}/{len(boxes)} done")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--boxes", type=int, default=4)
    ap.add_argument("--max-test", type=int, default=3)
    ap.add_argument("--folds", nargs="+", default=list(FOLDS))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(2)
    with open(a.out, "w") as out:
        for fold in a.folds:
            probe_fold(fold, FOLDS[fold], a, out)


if __name__ == "__main__":
    main()
