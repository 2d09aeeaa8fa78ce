#!/usr/bin/env python
"""How many box pixels the prompt's final forest learns from (issue 24): one-shot Segment from one centre 64×64 box
per train image (bench_partial.py's prompt: every box one prompt, default path), the final forest fitted on a
seeded sample of at most ``CAP`` of the box pixels (the self-check's forests keep their own sample,
``filters.SAMPLE_PIXELS``, so *auto* chooses the same path). Scored on the train and test images.

    python benchmarks/studies/probe_fit_pixels.py --data ../shared/data --caps 16384 65536 \\
        --set isbi2012_membrane=benchmarks/weights/lodo_isbi_episodic.pt:15 --out benchmarks/results/fit_pixels.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse

import numpy as np
from bench_partial import boxes_prompt, centre_box
from common import Dataset, dice_pct, finish_report, log, report_header, set_threads

from napari_fewcell.engine.prompt import adapt


def one_shot(weights: str, ds: Dataset, cap: int) -> tuple[str, dict, float, float]:
    """(path, check, train Dice, test Dice) of one-shot from every train image's centre box, final forest on ``cap``."""
    from napari_fewcell.engine import PromptParams, Segmenter

    plain = adapt.FIT_PIXELS  # read by the final fit alone; the check's fits keep filters.SAMPLE_PIXELS
    adapt.FIT_PIXELS = cap
    try:
        img, lab, train = ds.images, ds.labels, ds.train
        seg = Segmenter(PromptParams(weights=weights, device="cpu"))
        prompt = boxes_prompt(seg, img, lab, {i: centre_box(img[i].shape) for i in train}, train)
        seg.adapt(prompt)
        d = [np.mean([dice_pct(seg.segment(img[i], prompt), lab[i]) for i in ids]) for ids in (train, ds.test)]
    finally:
        adapt.FIT_PIXELS = plain
    return prompt.path, prompt.check, float(d[0]), float(d[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--set", action="append", required=True, metavar="DATASET=WEIGHTS:TRAIN_IMAGES")
    ap.add_argument("--caps", type=int, nargs="+", default=[16384, 65536])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(a.threads)
    rows = ["| data set | weights | boxes | final forest's pixels (at most) | path | check | train | test |",
            "|---|---|---|---|---|---|---|---|"]
    for spec in a.set:
        name, rest = spec.split("=", 1)
        weights, limit = rest.rsplit(":", 1)
        ds = Dataset(a.data, name, train_limit=int(limit))
        for cap in a.caps:
            path, check, d_train, d_test = one_shot(weights, ds, cap)
            log(f"{name} cap {cap}: {path} {check} train {d_train:.2f} test {d_test:.2f}")
            est = ", ".join(f"{k} {v:.3f}" for k, v in check.items())
            rows.append(f"| {name} | `{Path(weights).name}` | {len(ds.train)} | {cap:,} | {path} | {est} | "
                        f"{d_train:.2f} | {d_test:.2f} |")
    lines = report_header("The prompt's final forest: how many box pixels it learns from", False) + [
        "- one centre 64×64 box per train image, all in one prompt, default path (auto); mean per-class Dice %, mean "
        "over the images", "", *rows, ""]
    finish_report(lines, a.out)


if __name__ == "__main__":
    main()
