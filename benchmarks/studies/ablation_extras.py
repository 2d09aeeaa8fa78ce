#!/usr/bin/env python
"""How the cheap extra features were chosen (workflow 3), on TRAIN images only.

For one data set: support sets of 1 and 5 images from the first two thirds of its train split,
scored on the last third (test images are never read); features from the shipped extractors not
trained on that data set (leave-one-class-out). Compares the first extras (input channels +
Gaussian-smoothed luminance, σ 1–8) with the shipped ones (input channels + skimage's multiscale
basic features, σ 1–16). Median foreground Dice over 5 draws. Output pasted in docs/models.md.

    python benchmarks/studies/ablation_extras.py isbi2012_membrane --data /work/shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse

import numpy as np
from common import Dataset, loco_names, perceptron_dice, set_threads


def first_extras(x: np.ndarray) -> np.ndarray:
    """The first design: input channels + luminance blurred at σ = 1, 2, 4, 8."""
    from skimage.filters import gaussian

    lum = x.mean(0)
    return np.stack([*x, *(gaussian(lum, sigma=s, preserve_range=True) for s in (1, 2, 4, 8))]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support
    from napari_fewcell.engine.fewshot import features as F

    set_threads(args.threads)
    ds = Dataset(args.data, args.dataset)
    pool, val = ds.train[: len(ds.train) * 2 // 3], ds.train[len(ds.train) * 2 // 3 :]
    shipped, shipped_batch = F.extras, F.extras_batch
    for label, fn in (("input + Gaussians σ 1–8", first_extras), ("input + multiscale basic σ 1–16", shipped)):
        # Extractors.region() and region_batch() call the module's extras_batch()
        F.extras_batch = shipped_batch if fn is shipped else (lambda x, fn=fn: np.stack([fn(xi) for xi in x]))
        fx = F.Extractors(loco_names(args.dataset), device="cpu", cache_bytes=8 << 30)
        n_extras = fn(np.zeros((3, 8, 8), np.float32)).shape[0]  # the tiled path sizes its output by the names
        fx.feature_names = fx.feature_names[: -len(F.EXTRAS)] + [f"extra:{i}" for i in range(n_extras)]
        for k in (1, 5):
            res = {False: [], True: []}
            for d in range(5):
                rng = np.random.default_rng(100 * k + d)
                ids = [pool[j] for j in rng.choice(len(pool), k, replace=False)]
                data = [support(ds.images[i], ds.labels[i], name=i) for i in ids]
                for bfgs in (False, True):
                    m = run(fit_iter(data, PerceptronParams(bfgs=bfgs, seed=d), extractors=fx))
                    res[bfgs].append(np.mean(perceptron_dice(m, fx, ds, val)))
            print(f"| {args.dataset} | {label} | {k} | {np.median(res[False]):.1f} | {np.median(res[True]):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
