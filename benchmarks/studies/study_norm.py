#!/usr/bin/env python
"""Which intensity range the images a prompt is applied to should be stretched with (issue 20): bench_generalise.py
run with every scored image normalised by the *prompt image's* 0.1 / 99.9 percentiles instead of its own.

The engine stretches each image to [0, 1] by its own percentiles (core/image.py) before the network and the filters
read it. The RF baseline reads raw values (skimage scales an integer image by its dtype's range), so images of a set
share one scale there. Where a set's exposure is steady and its content varies (TEM axons: the 0.1 % percentile
moves from 3300 to 5300 between images of a 7000-wide range), the own stretch moves the brightness a forest fitted
on the prompt's box thresholds. This study measures it on the LODO folds, every path.

Variants (--range):
  own     each image by its own percentiles (the engine's default)
  prompt  every image by the prompt image's percentiles (the image the box was cut from)

Every other argument is bench_generalise.py's:

    python benchmarks/studies/study_norm.py --range prompt --data ../shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none forest fuse auto --no-end-to-end \
        --out results/norm_prompt_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py

import bench_generalise as bg
from study_filter_set import run_bench, study_options

from napari_fewcell.engine.core import lazy

RANGES = ("own", "prompt")
OWN_RANGE = lazy.LazyImage.intensity_range
PROMPT = {}  #: "image": the LazyImage of the prompt's image while a prompt is prepared and applied


def prompt_range(self):
    """The prompt image's range, seen as this image is (gray, colour, or a colour image's luminance)."""
    src = PROMPT.get("image")
    if src is None or self is src:
        return OWN_RANGE(self)
    like = lazy.LuminanceImage(src) if isinstance(self, lazy.LuminanceImage) else src
    return OWN_RANGE(like)


def patch_prompt_range() -> None:
    """Make every image's range the prompt image's: bench_generalise's Fewcell.prepare records the prompt image."""
    prepare = bg.Fewcell.prepare

    def recording_prepare(self, ds, box):
        PROMPT["image"] = lazy.LazyImage(ds.images[box[0]])
        return prepare(self, ds, box)

    bg.Fewcell.prepare = recording_prepare
    lazy.LazyImage.intensity_range = prompt_range


def main() -> None:
    argv, name, _ = study_options("study_norm", "--range", RANGES, "own")
    if name == "prompt":
        patch_prompt_range()
    run_bench("generalise", argv, f"study_norm.py --range {name}: every scored image stretched by "
              + ("its own percentiles (the engine's default)" if name == "own" else "the prompt image's percentiles"))


if __name__ == "__main__":
    main()
