#!/usr/bin/env python
"""A prompt box as big as the image: the time to prepare the prompt (embed, keys, self-check and fit) and to segment,
with the product's sampling of big parts (``annotated.PART_PIXELS``, ``attention.KMEANS_PIXELS``) and, in the same
process, with it switched off (every pixel, as before 2026-12-08); the self-check's estimates and the labels' Dice
against the truth each way. The sample image (520×696) with its whole labels as the prompt, then a 64×64 box for
scale, and a 1040×1392 mosaic of the sample. Run it alone on the machine.

    python benchmarks/bench_big_box.py --out benchmarks/results/big_box.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import dice_pct, finish_report, log, report_header, set_threads, timed

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def every_pixel(on: bool) -> None:
    """Switch the sampling of big parts off (``on``) or back on."""
    from napari_fewcell.engine.nets import attention
    from napari_fewcell.engine.prompt import annotated

    if not hasattr(every_pixel, "saved"):
        every_pixel.saved = (annotated.BoxData.sampled, attention.KMEANS_PIXELS)
    sampled, kmeans = every_pixel.saved
    annotated.BoxData.sampled = (lambda self, cap=0: self) if on else sampled
    attention.KMEANS_PIXELS = 1 << 62 if on else kmeans


def one(image, labels, box, truth) -> dict:
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    seg = Segmenter(PromptParams(device="cpu"))

    def prepare():
        p = seg.prepare_prompt(image, labels, box)
        seg.keys(p)
        seg.adapt(p)
        return p

    prompt, prep_s = timed(prepare)
    out, seg_s = timed(seg.segment, image, prompt)
    return {"prep": prep_s, "seg": seg_s, "path": prompt.path, "check": prompt.check, "dice": dice_pct(out, truth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/big_box.md")
    ap.add_argument("--before-max", type=int, default=520 * 696, help="run the every-pixel way up to this many pixels")
    args = ap.parse_args()
    set_threads(args.threads)
    import tifffile

    image, truth = tifffile.imread(SAMPLE / "nuclei.tif"), tifffile.imread(SAMPLE / "nuclei_labels.tif")
    big, big_truth = np.tile(image, (2, 2)), np.tile(truth, (2, 2))
    cases = [("whole sample, 520×696", image, truth, (0, 0, *image.shape), truth),
             ("64×64 box of the sample", image, truth, (256, 416, 64, 64), truth),
             ("whole 2×2 mosaic, 1040×1392", big, big_truth, (0, 0, *big.shape), big_truth)]
    rep = [*report_header("A prompt box as big as the image", False), "",
           "| prompt (fully labelled) | reading | prepare s (embed, keys, check, fit) | segment s | path | "
           "estimates | Dice % of the image |", "|---|---|---|---|---|---|---|"]
    one(image, truth, (256, 416, 64, 64), truth)  # warm: imports and first calls
    for name, img, lab, box, gt in cases:
        for label, off in (("a sample of big parts (the product)", False), ("every pixel (before)", True)):
            if off and len(lab) * len(lab[0]) > args.before_max:
                rep.append(f"| {name} | {label} | not run (over --before-max pixels) | | | | |")
                continue
            every_pixel(off)
            r = one(img, lab, box, gt)
            log(f"{name}, {label}: {r['prep']:.1f} s + {r['seg']:.1f} s")
            est = ", ".join(f"{k} {v:.3f}" for k, v in r["check"].items())
            rep.append(f"| {name} | {label} | {r['prep']:.2f} | {r['seg']:.2f} | {r['path']} | {est} | "
                       f"{r['dice']:.2f} |")
        every_pixel(False)
    rep.append("")
    finish_report(rep, args.out)


if __name__ == "__main__":
    main()
