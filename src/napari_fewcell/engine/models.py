"""Saved models of workflows 2 and 3 behind one call: ``open_model(path)`` tells a perceptron
(.npz) from a stage-2 network (.pt) and loads it, ready to ``predict``."""
from __future__ import annotations

import zipfile
from pathlib import Path

from .core.errors import FewcellError
from .fewshot.perceptron import Perceptron
from .partial.stage2 import SegModel


def is_perceptron_file(path: str | Path) -> bool:
    """True for an .npz (a zip of .npy arrays), as opposed to a torch model file (also a zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def open_model(path: str | Path, device: str = "auto", tta: bool | None = None):
    """A saved model of either kind — a perceptron (.npz) or a stage-2 network (.pt) — ready to predict."""
    if is_perceptron_file(path):
        if tta:
            raise FewcellError(f"{path} is a perceptron; test-time augmentation (--tta) is for networks only.")
        return Perceptron.load(path, device=device)
    return SegModel.load(path, device=device, tta=tta)
