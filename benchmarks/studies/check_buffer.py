#!/usr/bin/env python
"""Does a spatial buffer in the self-check (``PromptParams.check_buffer``) change what ``auto`` would choose?

For the validation boxes of bench_generalise (same seeds: 4 boxes per fold from train images), the self-check's
estimates of none / forest / fuse at buffers of 0, 8 and 16 pixels, and the path "auto between none and fuse"
picks at each. Compare with the Dice each path got on that box in a bench_generalise validation report
(benchmarks/results/generalise_val_forest.md): a buffer helps if it moves the choice towards the path that got
more. Writes a Markdown table to stdout.

    python benchmarks/studies/check_buffer.py --data /work/shared/data > benchmarks/results/check_buffer_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse
import copy

from common import BOX, Dataset, seeded_box, set_threads

from napari_fewcell.engine.nets.unet import default_weights_path, load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.training.datasets import split_name

FOLDS = {"isbi2012_membrane": "benchmarks/weights/lodo_isbi_episodic.pt", "usiigaci_phase_contrast_cells": None,
         "tem_myelinated_axons": None, "tem_myelinated_axons:labels_myelin": None, "coelho2009_nih3t3_nuclei": None,
         "isbi2014_cervical_synth_cells": None}  # None: the shipped weights (they never saw these sets)
BUFFERS = (0, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--boxes", type=int, default=4)
    a = ap.parse_args()
    set_threads(1)
    print("| fold | box | " + " | ".join(f"none / forest / fuse at {b} px → auto" for b in BUFFERS) + " |")
    print("|---|---|" + "---|" * len(BUFFERS))
    for fold, weights in FOLDS.items():
        set_name, folder = split_name(fold)
        ds = Dataset(a.data, set_name, folder=folder or "labels")
        model = load_model(Path(__file__).parents[2] / weights if weights else default_weights_path())
        for b in range(a.boxes):
            src, y, x = seeded_box(b, ds, 0.05, 0.95)
            cells = []
            for buf in BUFFERS:
                params = PromptParams(adapt="forest", check_buffer=buf, device="cpu")
                seg = Segmenter(params, model=copy.deepcopy(model))
                prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
                check = dict(seg.adapt(prompt).check)
                seg.params.adapt = "fuse"
                check.update(seg.adapt(prompt).check)
                if not check:  # no part of the box can be scored (BoxData.fair)
                    cells.append("no estimate")
                    continue
                auto = "fuse" if check["fuse"] > check["none"] + 0.005 else "none"
                cells.append(" / ".join(f"{100 * check[p]:.1f}" for p in ("none", "forest", "fuse")) + f" → {auto}")
            print(f"| {fold} | {b} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
