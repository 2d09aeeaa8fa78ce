#!/usr/bin/env python
"""More filters for the forest and fused paths (issue 20): bench_generalise.py run with the forests' bank
(``prompt/filters.forest_features``: per Gaussian scale σ ∈ {1, 2, 4, 8, 16} the gradient magnitude and the two Hessian
eigenvalues, the smoothed intensity up to σ 4) extended by maps that ilastik's default set has and skimage's
``multiscale_basic_features`` lacks. The RF baseline keeps its bank (common.RFBaseline calls skimage itself).

Variants (--variant):
  engine  the engine's bank, unchanged
  st      + the two eigenvalues of the structure tensor at each σ (derivatives of the σ-smoothed image, their
          products smoothed at σ/2): how strongly and how coherently the intensity changes around a pixel (texture
          and orientation, e.g. a membrane or a myelin sheath)
  std     + the local standard deviation at each σ (sqrt(G_σ(I²) − G_σ(I)²)): contrast of the surroundings
  both    + both

    python studies/study_filter_extra.py --variant st --data ../shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none forest fuse auto --no-end-to-end --out results/extra_st_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import numpy as np
from study_filter_set import run_bench, study_options, use_features

from napari_fewcell.engine.core.filters import scales
from napari_fewcell.engine.prompt import filters

VARIANTS = ("engine", "st", "std", "both")


def extra_maps(image: np.ndarray, sigma: float, kinds: tuple[str, ...]) -> list[np.ndarray]:
    from skimage.filters import gaussian

    smooth = gaussian(image, sigma=sigma, preserve_range=True)
    out = []
    if "st" in kinds:
        d_row, d_col = np.gradient(smooth)
        rho = sigma / 2
        j_rr, j_rc, j_cc = (gaussian(a, sigma=rho, preserve_range=True) for a in
                            (d_row * d_row, d_row * d_col, d_col * d_col))
        half, root = (j_rr + j_cc) / 2, np.sqrt(((j_rr - j_cc) / 2) ** 2 + j_rc**2)
        out += [half + root, half - root]
    if "std" in kinds:
        out.append(np.sqrt(np.maximum(gaussian(image * image, sigma=sigma, preserve_range=True) - smooth**2, 0)))
    return out


def variant_features(name: str):
    engine_features = filters.forest_features
    kinds = {"engine": (), "st": ("st",), "std": ("std",), "both": ("st", "std")}[name]

    def features(x: np.ndarray) -> np.ndarray:
        f = engine_features(x)
        if not kinds:
            return f
        lum = x.mean(0).astype(np.float32)
        maps = [m for s in scales(filters.SIGMA_MIN, filters.SIGMA_MAX) for m in extra_maps(lum, s, kinds)]
        return np.concatenate([f, np.stack(maps, -1).astype(np.float32)], -1)

    return features


def main() -> None:
    argv, name, bench = study_options("study_filter_extra", "--variant", VARIANTS, "engine",
                                      ("generalise", "shipped"))
    use_features(variant_features(name))
    run_bench(bench, argv, f"study_filter_extra.py --variant {name}: the forest and fused paths read the engine's "
              f"bank plus '{name}' (the RF baseline keeps its bank)")


if __name__ == "__main__":
    main()
