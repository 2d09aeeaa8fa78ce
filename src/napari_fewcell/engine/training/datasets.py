"""The labelled data sets of ``../shared/data`` (their ``train`` split only) for pre-training.

Each set is a folder with ``split.csv`` (id, split), ``images/<id>.tif`` and ``labels/<id>.tif``;
only ``split == train`` rows are read, so test images are never seen in training.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import tifffile

from ..core.errors import FewcellError
from ..core.image import as_image2d, intensity_range, normalize


@dataclasses.dataclass
class DataSet:
    name: str
    images: list[np.ndarray]  # (3, H, W) float32 in [0, 1]
    labels: list[np.ndarray]  # (H, W) uint8 {0, 1}
    ids: list[str]


def load_training_sets(root: str | Path, names) -> list[DataSet]:
    root = Path(root)
    sets = []
    for name in names:
        d = root / name
        if not (d / "split.csv").is_file():
            raise FewcellError(f"No data set '{name}' under {root} (expected {d / 'split.csv'}).")
        with open(d / "split.csv", newline="") as fh:
            ids = [r["id"] for r in csv.DictReader(fh) if r["split"].strip() == "train"]
        imgs, labs = [], []
        for i in ids:
            arr = as_image2d(tifffile.imread(d / "images" / f"{i}.tif"))
            imgs.append(normalize(arr, intensity_range(arr)))
            labs.append((tifffile.imread(d / "labels" / f"{i}.tif") > 0).astype(np.uint8))
        sets.append(DataSet(name, imgs, labs, ids))
    return sets
