#!/usr/bin/env python
"""Smoothing the class probabilities before the arg-max (issue 20: a forest's labels are pixel-wise and noisy).

A forest on filters labels each pixel alone: its labels carry salt-and-pepper errors and ragged edges that no
neighbour corrects. A Gaussian of the per-class probabilities over the image plane (σ in pixels), taken before the
arg-max, lets neighbours vote. Variants (--sigma): 0 (the engine today), 0.5, 1, 2, 3. Applied to every path's
probabilities of every tile (the study smooths each 512² tile on its own, so a tile's border lacks its neighbours'
votes: a study, not the engine) and, with ``--rf same`` (the default), to the RF baseline's too, so that the margin
compares like with like; ``--rf plain`` keeps the ilastik-style baseline as it is.

    python studies/study_smooth_probs.py --sigma 1 --data /work/shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none fuse auto --no-end-to-end --out results/smooth_1_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import common
import numpy as np
import torch
from scipy import ndimage
from study_filter_set import run_bench, study_options, take_option

from napari_fewcell.engine.prompt.segmenter import Segmenter

SIGMAS = ("0", "0.5", "1", "2", "3")


def smoothed(probs: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, C) probabilities with each class's plane smoothed by a Gaussian of ``sigma`` pixels (reflected
    borders)."""
    if sigma <= 0:
        return probs
    return ndimage.gaussian_filter(probs, sigma=(sigma, sigma, 0), mode="reflect")


def patch_engine(sigma: float) -> None:
    """Every tile's probabilities (Segmenter.tile_probs: every path) smoothed before the arg-max."""
    plain = Segmenter.tile_probs

    def tile_probs(self, sub, rng, win, fwin, keys, ad, attended=None):
        probs = plain(self, sub, rng, win, fwin, keys, ad, attended)
        h, w = win.ty1 - win.ty, win.tx1 - win.tx
        out = smoothed(probs.float().cpu().numpy().reshape(h, w, -1), sigma)
        return torch.from_numpy(np.ascontiguousarray(out.reshape(h * w, -1))).to(probs.device)

    Segmenter.tile_probs = tile_probs


def patch_rf(sigma: float) -> None:
    """The RF baseline's labels from its smoothed probabilities."""

    def predict(clf, feat):
        proba = clf.predict_proba(feat.reshape(-1, feat.shape[-1])).reshape(*feat.shape[:2], -1)
        return clf.classes_[smoothed(proba, sigma).argmax(-1)]

    common.RFBaseline.predict = staticmethod(predict)


def main() -> None:
    argv, name, _ = study_options("study_smooth_probs", "--sigma", SIGMAS, "0")
    rf = take_option(argv, "--rf", "same")
    if rf not in ("same", "plain"):
        sys.exit("study_smooth_probs: error: --rf must be same or plain")
    patch_engine(float(name))
    if rf == "same":
        patch_rf(float(name))
    run_bench("generalise", argv, f"study_smooth_probs.py --sigma {name} --rf {rf}: every path's class probabilities "
              f"smoothed by a Gaussian of σ {name} px before the arg-max (each tile alone)"
              + ("; the RF baseline's too" if rf == "same" else "; the RF baseline as it is"))


if __name__ == "__main__":
    main()
