"""A crop bank: the train splits of the labelled data sets in one compact file, for pre-training anywhere.

``fewcell pretrain-bank`` reads ``../shared/data`` (train splits only, exactly as :func:`.datasets.load_tasks`
does: the same normalisation), keeps every train image whole up to ``window``² pixels, and cuts seeded
windows of that size out of larger images until a set holds about ``budget_mpx`` megapixels; images
are stored as uint8 (the normalised [0, 1] intensities × 255) and labels as {0, 1}, compressed. The file
is a plain ``.npz`` (no pickles: ``np.load(allow_pickle=False)``) whose ``meta`` entry is JSON: per set,
its label folders and the ids of the windows' source images, so a card still lists every image trained on.

``fewcell pretrain --data BANK.npz`` trains from it, on a CPU or a GPU machine, as from the folders.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import FewcellError
from ..core.files import atomic_write
from .datasets import ALL_SETS, DataSet, drop_excluded, load_set, load_tasks, split_name, task_name, wanted_folders
from .synthetic import is_synthetic, synthetic_tasks

BANK_FORMAT = "napari-fewcell/crop-bank"


def windows_of(shape: tuple[int, int], window: int, n: int,
               rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """``n`` seeded (y, x, h, w) windows of at most ``window``² inside an image of ``shape`` (the whole image
    when it fits)."""
    H, W = shape
    h, w = min(H, window), min(W, window)
    if (h, w) == (H, W):
        return [(0, 0, H, W)]
    return [(int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w) for _ in range(n)]


def windows_per_image(tasks: list[DataSet], window: int, budget_mpx: float) -> int:
    """How many windows each image of a set gives, so that the set holds about ``budget_mpx`` megapixels."""
    px = sum(min(lab.shape[0], window) * min(lab.shape[1], window) for lab in tasks[0].labels)
    return int(np.clip(round(budget_mpx * 1e6 / max(px, 1)), 1, 8))


def build_bank(data: str | Path, out: str | Path, sets: Sequence[str] = ALL_SETS, window: int = 512,
               budget_mpx: float = 4.5, seed: int = 0) -> dict:
    """Write the crop bank of ``sets`` (their train splits) to ``out``; returns its ``meta``."""
    rng = np.random.default_rng(seed)
    arrays, meta = {}, {"format": BANK_FORMAT, "version": 1, "window": window, "budget_mpx": budget_mpx,
                        "seed": seed, "sets": {}}
    for set_name in sets:
        tasks = load_set(Path(data), set_name, None)
        folders = [split_name(t.name)[1] or "labels" for t in tasks]
        n = windows_per_image(tasks, window, budget_mpx)
        ids = []
        for k, (img, i) in enumerate(zip(tasks[0].images, tasks[0].ids)):
            for y, x, h, w in windows_of(img.shape[1:], window, n, rng):
                j = len(ids)
                crop = img[:, y : y + h, x : x + w]
                gray = bool(np.all(crop[0] == crop[1]) and np.all(crop[0] == crop[2]))
                arrays[f"{set_name}/image/{j}"] = np.round((crop[:1] if gray else crop) * 255).astype(np.uint8)
                for folder, t in zip(folders, tasks):
                    arrays[f"{set_name}/{folder}/{j}"] = t.labels[k][y : y + h, x : x + w].astype(np.uint8)
                ids.append(i)
        meta["sets"][set_name] = {"folders": folders, "ids": ids}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(Path(out), lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))
    return meta


def read_meta(path: str | Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
    except (OSError, ValueError, KeyError) as e:
        raise FewcellError(f"{path} is not a crop bank ({type(e).__name__}); make one with fewcell pretrain-bank.")
    if meta.get("format") != BANK_FORMAT:
        raise FewcellError(f"{path} is not a crop bank; make one with fewcell pretrain-bank.")
    return meta


def load_bank_tasks(path: str | Path, wanted: dict[str, list[str] | None]) -> list[DataSet]:
    """The tasks of a crop bank: ``wanted`` maps a set to its label folders (None: all), as load_tasks asks."""
    meta = read_meta(path)
    tasks = []
    with np.load(path, allow_pickle=False) as z:
        for set_name, folders in wanted.items():
            if set_name not in meta["sets"]:
                raise FewcellError(f"The crop bank {path} holds no set '{set_name}'; it holds "
                                   f"{', '.join(meta['sets'])}.")
            info = meta["sets"][set_name]
            missing = [f for f in folders or () if f not in info["folders"]]
            if missing:
                raise FewcellError(f"The crop bank's set {set_name} has no label folder {', '.join(missing)}; "
                                   f"it has {', '.join(info['folders'])}.")
            images = []
            for j in range(len(info["ids"])):
                a = z[f"{set_name}/image/{j}"].astype(np.float32) / 255
                images.append(np.repeat(a, 3, 0) if a.shape[0] == 1 else a)
            for folder in folders or info["folders"]:
                labels = [z[f"{set_name}/{folder}/{j}"] for j in range(len(info["ids"]))]
                tasks.append(DataSet(task_name(set_name, folder), images, labels, [str(i) for i in info["ids"]]))
    return tasks


def is_bank(path: str | Path) -> bool:
    return Path(path).suffix == ".npz"


def load_any(data: str | Path, names: Sequence[str] = ALL_SETS, exclude: Sequence[str] = ()) -> list[DataSet]:
    """The tasks named, from a crop bank (``.npz``) or from the data sets' folders; ``synthetic`` names
    (:mod:`.synthetic`) are generated."""
    real = [n for n in names if not is_synthetic(n)]
    made = synthetic_tasks([n for n in names if is_synthetic(n)], exclude)
    if not real and made:
        return made
    if not is_bank(data):
        return load_tasks(data, real, exclude) + made
    if not Path(data).is_file():
        raise FewcellError(f"The crop bank {data} does not exist; make it with fewcell pretrain-bank.")
    return drop_excluded(load_bank_tasks(data, wanted_folders(real, exclude)), exclude) + made
