#!/usr/bin/env python
"""Why the suggestion loop falls below random on DSB fluorescence (issue 21): the perceptron of bench_suggest.py
(leave-one-class-out extractors) fitted on the loop's first tile (031) alone and with its second (042, the inside of
an embryo: bright, diffuse, labelled background), scored on every test image and on both tiles themselves.

    python studies/probe_suggest_yolk.py --data ../shared/data   # prints its findings
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

import argparse

import numpy as np
from common import Dataset, fg_dice, loco_names, perceptron_dice, set_threads

TILES = {"031": (264, 440, 256, 256), "042": (256, 256, 256, 256)}  #: the loop's first two (suggest_own_scale_test.md)


def fit_and_score(ds, fx, chosen: list[str], **params) -> str:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    data = [support(ds.images[i], ds.labels[i], [TILES[i]], name=i) for i in chosen]
    model = run(fit_iter(data, PerceptronParams(seed=3, **params), extractors=fx))
    test = perceptron_dice(model, fx, ds, ds.test)
    own = []
    for i, (y, x, h, w) in TILES.items():
        pred = model.labels_from(model.probabilities(fx.features(ds.images[i], None)))[y : y + h, x : x + w]
        own.append(f"tile {i}: Dice {fg_dice(pred, ds.labels[i][y : y + h, x : x + w]):.1f}, "
                   f"predicted foreground {np.mean(pred > 0):.1%}")
    return (f"support {' + '.join(chosen)} {params or ''}: test fg Dice {np.mean(test):.1f} (per image "
            f"{' '.join(f'{v:.0f}' for v in test)}); " + "; ".join(own))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    a = ap.parse_args()
    from napari_fewcell.engine.fewshot.features import Extractors

    set_threads(2)
    ds = Dataset(a.data, "dsb2018_fluo")
    fx = Extractors(loco_names("dsb2018_fluo"), device="cpu", cache_bytes=4 << 30)
    print(f"test images {', '.join(ds.test)}")
    for chosen, params in ((["031"], {}), (["031", "042"], {}), (["031", "042"], {"lam": 1e-2}),
                           (["031", "042"], {"bfgs": False}), (["031", "042"], {"intensity": "support"})):
        print(fit_and_score(ds, fx, chosen, **params))


if __name__ == "__main__":
    main()
