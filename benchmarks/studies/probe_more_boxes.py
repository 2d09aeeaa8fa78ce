#!/usr/bin/env python
"""Why one-shot from more boxes can score lower (issue 20: "more boxes do not always help"; a probe).

bench_partial.py's one-shot row (every train image's centre 64×64 box as one prompt, the default path) scored 80.74 on
TEM axons' test images from the first 4 train images and 76.85 from all 11. Here each path is run from the first N
boxes: attention alone, the forest on the filters, the fused path, and the default (``auto``), with the self-check's
estimates, scored on every test image (Dice % = mean of foreground and background Dice).

    python studies/probe_more_boxes.py --data /work/shared/data --dataset tem_myelinated_axons --boxes 4 11 \
        --out results/more_boxes_tem.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse

import numpy as np
from bench_partial import boxes_prompt, centre_box
from common import Dataset, dice_pct, finish_report, log, report_header, set_threads

PATHS = ("none", "forest", "fuse", "auto")


def run_paths(ds: Dataset, weights: str, n: int) -> list[str]:
    from napari_fewcell.engine import PromptParams, Segmenter

    train = ds.train[:n]
    boxes = {i: centre_box(ds.images[i].shape) for i in train}
    rows = []
    for path in PATHS:
        seg = Segmenter(PromptParams(weights=weights, device="cpu", adapt=path))
        prompt = boxes_prompt(seg, ds.images, ds.labels, boxes, train)
        seg.adapt(prompt)
        dice = float(np.mean([dice_pct(seg.segment(ds.images[i], prompt), ds.labels[i]) for i in ds.test]))
        check = ", ".join(f"{p} {v:.3f}" for p, v in (prompt.check or {}).items()) or "none made"
        log(f"{n} boxes, {path}: {dice:.2f} (took {prompt.path}; check {check})")
        rows.append(f"| {n} | {path} | {dice:.2f} | {prompt.path} | {check} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="tem_myelinated_axons")
    ap.add_argument("--weights", default="../src/napari_fewcell/weights/fewcell_embed_v1.pt")
    ap.add_argument("--boxes", type=int, nargs="+", default=[4, 11])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(a.threads)
    ds = Dataset(a.data, a.dataset, train_limit=max(a.boxes))
    rows = [r for n in a.boxes for r in run_paths(ds, a.weights, n)]
    rep = report_header(f"One-shot from more boxes, path by path (`{a.dataset}`)", False) + [
        f"- weights `{a.weights}`; the centre 64×64 box of each of the first N train images ({', '.join(ds.train)}) "
        f"as one prompt; scored on the {len(ds.test)} test images", "",
        "| boxes | path asked | Dice % | path taken | self-check estimates (the engine's: held-out Dice less "
        "CHECK_BIAS) |",
        "|---|---|---|---|---|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
