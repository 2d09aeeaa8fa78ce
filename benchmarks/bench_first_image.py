#!/usr/bin/env python
"""How long one typical image takes, as a user meets it (issue 22, item 11): `fewcell segment` from the command to
the labels file, in a fresh process (start-up, torch, model load, prompt check and adaptation, read, segment,
write), run several times in a row (the first run also fills the operating system's file cache); and, with the
model loaded and the prompt adapted (the API, the widget's second Segment), the time per image. The prompt is the
sample's painted box; the image is a fluorescence-nuclei test image of ~1000×1300 px (Coelho NIH3T3) and the
sample itself (512²). Run it alone on the machine.

    python benchmarks/bench_first_image.py --data ../shared/data --out benchmarks/results/first_image.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import finish_report, log, report_header, set_threads, timed, timed_command

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
BOX = ("256", "416", "64", "64")


def command(image: Path, out: str, threads: int) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "napari_fewcell.cli", "segment", str(image), "--prompt-image",
           str(SAMPLE / "nuclei.tif"), "--prompt-labels", str(SAMPLE / "nuclei_prompt_labels.tif"), "--box", *BOX,
           "--out", out, "--device", "cpu"]
    return timed_command(cmd, threads)


def loaded(images: dict, repeats: int) -> dict:
    """Seconds per image with the model loaded and the prompt adapted (median of ``repeats``), and the one-off
    model load and prompt preparation."""
    import tifffile

    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    seg, load_s = timed(lambda: Segmenter(PromptParams(device="cpu")))
    image = tifffile.imread(SAMPLE / "nuclei.tif")
    prompt, prep_s = timed(lambda: seg.prepare_prompt(image, tifffile.imread(SAMPLE / "nuclei_prompt_labels.tif"),
                                                     tuple(int(v) for v in BOX)))
    _, adapt_s = timed(seg.adapt, prompt)
    out = {"load": load_s, "prompt": prep_s + adapt_s}
    for name, arr in images.items():
        seg.segment(arr, prompt)  # a first pass: allocator and caches
        out[name] = float(np.median([timed(seg.segment, arr, prompt)[1] for _ in range(repeats)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=3, help="fresh-process runs in a row per image")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import tifffile

    set_threads(args.threads)
    big = Path(args.data) / "coelho2009_nih3t3_nuclei" / "images" / "001.tif"
    size = "×".join(map(str, tifffile.imread(big).shape))
    images = {"sample 512²": SAMPLE / "nuclei.tif", f"Coelho 001 ({size})": big}
    rows = ["| image | fresh process, run 1 (s) | later runs (s) |", "|---|---|---|"]
    for name, path in images.items():
        secs = []
        for r in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                s, error = command(path, f"{tmp}/out", args.threads)
            if error:
                sys.exit(f"bench_first_image: the command failed on {path}: {error}")
            secs.append(s)
            log(f"{name}: run {r + 1} {s:.2f} s")
        rows.append(f"| {name} | {secs[0]:.2f} | {', '.join(f'{s:.2f}' for s in secs[1:])} |")
    warm = loaded({n: tifffile.imread(p) for n, p in images.items()}, repeats=3)
    rows += ["", "With the model loaded and the prompt adapted (API; the widget's later Segments), median of 3:", "",
             f"- model load {warm['load']:.2f} s and prompt check + adaptation {warm['prompt']:.2f} s, once;"]
    rows += [f"- {n}: **{warm[n]:.2f} s** per image" for n in images]
    finish_report([*report_header("napari-fewcell: one image, end to end", False),
                   f"- `fewcell segment` in a fresh process, {args.runs} runs in a row per image, {args.threads} "
                   "threads; prompt: the sample's box (default path `auto`)", "", *rows], args.out)


if __name__ == "__main__":
    main()
