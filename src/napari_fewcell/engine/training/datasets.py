"""The labelled data sets of ``../shared/data`` (their ``train`` split only) for pre-training.

Each set is a folder with ``split.csv`` (id, split), ``images/<id>.tif`` and one or more label
folders: ``labels/<id>.tif`` (the set's structure) and, in some sets, further structures of the
same images (``labels_nuclei``, ``labels_myelin``). ``labels_instances`` (object ids of the main
structure) is not a class of its own and is not read. Only ``split == train`` rows are read, so
test images are never seen in training.

A *task* is one set with one label folder: ``tem_myelinated_axons`` (axons) and
``tem_myelinated_axons:labels_myelin`` (myelin) are two tasks on the same images, which is what
teaches the network that the prompt — not the image — defines the class. Names select tasks:
``SET`` is every label folder of a set, ``SET:FOLDER`` just one; ``exclude`` takes the same names
(a whole set for leave-one-data-set-out, one folder for a class-out fold).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import tifffile

from ..core.errors import FewcellError
from ..core.image import as_image2d, intensity_range, normalize

#: the eight labelled sets of ../shared/data
ALL_SETS = (
    "isbi2012_membrane", "dsb2018_fluo", "dsb2018_he", "stardist_sample2d", "usiigaci_phase_contrast_cells",
    "isbi2014_cervical_synth_cells", "tem_myelinated_axons", "coelho2009_nih3t3_nuclei",
)
NOT_A_CLASS = ("labels_instances",)


@dataclasses.dataclass
class DataSet:
    """One task: the train images of a set and one of its label folders."""

    name: str  #: ``SET`` for the main labels, ``SET:FOLDER`` for another structure
    images: list[np.ndarray]  # (3, H, W) float32 in [0, 1] (shared between the tasks of one set)
    labels: list[np.ndarray]  # (H, W) uint8 {0, 1}
    ids: list[str]

    @property
    def set_name(self) -> str:
        return self.name.split(":")[0]


def split_name(name: str) -> tuple[str, str | None]:
    """``SET`` → (SET, None); ``SET:FOLDER`` → (SET, FOLDER)."""
    set_name, _, folder = name.partition(":")
    return set_name, folder or None


def task_name(set_name: str, folder: str) -> str:
    """The task of a set's label folder: ``SET`` for ``labels``, ``SET:FOLDER`` for another (split_name's inverse)."""
    return set_name if folder == "labels" else f"{set_name}:{folder}"


def label_folders(d: Path) -> list[str]:
    """The class label folders of a set: ``labels`` first, then ``labels_*`` (not ``labels_instances``)."""
    found = [p.name for p in d.iterdir() if p.is_dir() and p.name.startswith("labels") and p.name not in NOT_A_CLASS]
    return sorted(found, key=lambda n: (n != "labels", n))


def train_ids(d: Path) -> list[str]:
    with open(d / "split.csv", newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh) if r["split"].strip() == "train"]


def read_pair(d: Path, folder: str, i: str) -> np.ndarray:
    """The binary labels of image ``i`` in ``folder``, with one sentence if missing or unreadable."""
    path = d / folder / f"{i}.tif"
    if not path.is_file():
        raise FewcellError(f"The data set {d.name} has no {folder}/{i}.tif for its train image {i}; "
                           "give every train image its labels (or remove it from split.csv).")
    return (tifffile.imread(path) > 0).astype(np.uint8)


def load_set(root: Path, set_name: str, folders: Sequence[str] | None) -> list[DataSet]:
    """The tasks of one set: its train images (read and normalised once) with each chosen label folder."""
    d = root / set_name
    if not (d / "split.csv").is_file():
        raise FewcellError(f"No data set '{set_name}' under {root} (expected {d / 'split.csv'}); "
                           "check --data and the set's name.")
    have = label_folders(d)
    if not have:
        raise FewcellError(f"The data set {set_name} under {root} has no labels folder (labels/ or labels_*/); "
                           "it cannot teach a structure — give its labels or leave it out.")
    missing = [f for f in folders or () if f not in have]
    if missing:
        raise FewcellError(f"The data set {set_name} has no label folder {', '.join(missing)}; "
                           f"it has {', '.join(have)}.")
    ids = train_ids(d)
    if not ids:
        raise FewcellError(f"The data set {set_name} has no train images in its split.csv.")
    images = []
    for i in ids:
        arr = as_image2d(tifffile.imread(d / "images" / f"{i}.tif"), f"{set_name} image {i}")
        images.append(normalize(arr, intensity_range(arr)))
    tasks = []
    for folder in folders or have:
        labels = [read_pair(d, folder, i) for i in ids]
        for i, img, lab in zip(ids, images, labels):
            if lab.shape != img.shape[1:]:
                raise FewcellError(
                    f"The labels {folder}/{i}.tif of {set_name} are {lab.shape[0]}×{lab.shape[1]} but the image is "
                    f"{img.shape[1]}×{img.shape[2]}; every label image must have its image's height and width."
                )
        tasks.append(DataSet(task_name(set_name, folder), images, labels, ids))
    return tasks


def wanted_folders(names: Sequence[str], exclude: Sequence[str]) -> dict[str, list[str] | None]:
    """Set → the label folders asked for (None: every folder), sets excluded whole left out."""
    excluded_sets = {n for n in exclude if ":" not in n}
    wanted: dict[str, list[str] | None] = {}
    for name in names:
        set_name, folder = split_name(name)
        if set_name in excluded_sets:
            continue
        if folder is None:
            wanted[set_name] = None
        elif wanted.get(set_name, []) is not None:
            wanted.setdefault(set_name, []).append(folder)
    return wanted


def drop_excluded(tasks: list[DataSet], exclude: Sequence[str]) -> list[DataSet]:
    """The tasks less those excluded by ``SET:FOLDER``; one sentence when nothing is left."""
    excluded_tasks = {n for n in exclude if ":" in n}
    tasks = [t for t in tasks if t.name not in excluded_tasks and f"{t.set_name}:labels" not in excluded_tasks]
    if not tasks:
        raise FewcellError("No data set is left to train on after --exclude; name at least one set not excluded.")
    return tasks


def load_tasks(root: str | Path, names: Sequence[str] = ALL_SETS, exclude: Sequence[str] = ()) -> list[DataSet]:
    """Every task named (``SET`` or ``SET:FOLDER``) less those excluded, each set read once."""
    root = Path(root)
    if not root.is_dir():
        raise FewcellError(f"The data folder {root} {'is a file' if root.exists() else 'does not exist'}; give --data "
                           "the folder holding the data sets (or a crop bank .npz).")
    tasks = []
    for set_name, folders in wanted_folders(names, exclude).items():
        tasks += load_set(root, set_name, folders)
    return drop_excluded(tasks, exclude)


def load_training_sets(root: str | Path, names) -> list[DataSet]:
    """One task per set named: its main ``labels`` (what the MSD extractors and the first pre-training used)."""
    return [t for name in names for t in load_set(Path(root), name, ["labels"])]
