#!/usr/bin/env python
"""Does the coarse smoothed intensity (σ 8, 16) help a forest fitted on boxes of *several* images? (issue 20/24)

Since 2026-12-06 the forest and fused paths read the filter bank without the smoothed intensity above σ 4
(prompt/filters.SMOOTH_SIGMA_MAX): a forest fitted on one box learns the wide surroundings' brightness as a
threshold that other images do not share. bench_partial.py's one-shot (one prompt of a centre 64×64 box in each of
15 ISBI train images, the fused path) lost 0.9 with it (results/partial_lodo_isbi_filters4.md against
results/partial_lodo_isbi_filters_all.md). This study fits the fused path on the centre boxes of the first k train
images, k = 1, 2, 4, ..., with both banks, and scores the test images; the RF baseline (full bank, 100 trees) on the
same boxes beside it.

    python benchmarks/studies/study_bank_images.py --data ../shared/data \
        --fold isbi2012_membrane=weights/lodo_isbi_episodic.pt --fold tem_myelinated_axons=shipped \
        --counts 1 2 4 8 15 --out results/bank_images.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, bench_partial

import numpy as np
from bench_partial import boxes_prompt, centre_box, forest_on_boxes
from common import Dataset, dice_pct, finish_report, log, report_header, set_threads
from study_filter_set import use_features, variant_features

from napari_fewcell.engine import PromptParams, Segmenter
from napari_fewcell.engine.nets.unet import default_weights_path
from napari_fewcell.engine.prompt import filters

BANKS = {"σ ≤ 4 (the default)": filters.forest_features, "every σ (the bank before)": variant_features("all")}


def fused(weights: str, ds: Dataset, boxes: dict, ids: list, path: str) -> tuple[float, str]:
    """Mean Dice over ``ids`` of one prompt made of ``boxes`` ({image id: box}, in order), on ``path``."""
    seg = Segmenter(PromptParams(weights=weights, device="cpu", adapt=path))
    prompt = boxes_prompt(seg, ds.images, ds.labels, boxes, list(boxes))
    seg.adapt(prompt)
    return float(np.mean([dice_pct(seg.segment(ds.images[i], prompt), ds.labels[i]) for i in ids])), prompt.path


def two_classes(labels: np.ndarray, box) -> bool:
    y, x, h, w = box
    return len(np.unique(labels[y : y + h, x : x + w])) > 1


def fold_rows(name: str, weights: str, counts: list[int], args) -> list[str]:
    ds = Dataset(args.data, name)
    ids = ds.test[: args.max_test]
    rows = []
    usable = [i for i in ds.train if two_classes(ds.labels[i], centre_box(ds.images[i].shape))]
    for k in [c for c in counts if c <= len(usable)]:
        train = usable[:k]
        boxes = {i: centre_box(ds.images[i].shape) for i in train}
        rf = forest_on_boxes(ds.images, ds.labels, boxes, train, ids, args.threads)
        cells = [f"{np.mean([dice_pct(rf[i], ds.labels[i]) for i in ids]):.2f}"]
        for bank in BANKS.values():
            use_features(bank)
            for path in args.paths:
                d, chosen = fused(weights, ds, boxes, ids, path)
                cells.append(f"{d:.2f}" + (f" ({chosen})" if path == "auto" else ""))
        log(f"{name} k={k}: {cells}")
        rows.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--fold", action="append", required=True, help="SET=WEIGHTS ('shipped': the package's)")
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 15])
    ap.add_argument("--paths", nargs="+", default=["fuse", "auto"])
    ap.add_argument("--max-test", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    set_threads(args.threads)
    head = " | ".join(f"{b}: {p}" for b in BANKS for p in args.paths)
    lines = [*report_header("The forests' bank against the number of images the prompt's boxes come from", False),
             "- the centre 64×64 box of each of the first k train images whose centre box holds both classes, one "
             f"prompt; the first {args.max_test} test images scored (mean of foreground and background Dice %)",
             "- weights: " + ", ".join(args.fold), "",
             f"| fold | k images | RF on the boxes | {head} |",
             "|---|---|" + "---|" * (1 + len(BANKS) * len(args.paths))]
    for spec in args.fold:
        name, weights = spec.split("=")
        lines += fold_rows(name, str(default_weights_path()) if weights == "shipped" else weights, args.counts, args)
    finish_report(lines, args.out)


if __name__ == "__main__":
    main()
