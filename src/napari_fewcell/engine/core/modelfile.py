"""One reader and one writer for every model file this package writes.

Every kind of file (embedding network, MSD extractor, stage-2 network, perceptron) is a plain
dict with ``format`` and ``version`` — a ``torch.save`` of tensors and primitives read back with
``torch.load(weights_only=True)``, or for the perceptron an ``.npz`` of arrays plus JSON. What
differs between kinds is only the file's format name and the sentences a user reads when a file
is missing, unreadable, of another kind, of another version or damaged: a :class:`Kind` holds
them (with ``{path}``, ``{version}`` and ``{expected}`` filled in).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import FewcellError
from .files import atomic_write


@dataclasses.dataclass(frozen=True)
class Kind:
    format: str
    version: int
    missing: str  #: the file does not exist
    unreadable: str  #: the file cannot be read at all
    foreign: str  #: a readable file of another format
    old_version: str  #: this format in another version ({version}, {expected})
    damaged: str  #: the right format and version, but its contents do not build a model
    others: dict = dataclasses.field(default_factory=dict)  #: format name → sentence for a known other kind

    @property
    def header(self) -> dict:
        """What every file of this kind starts with: ``{"format", "version"}``."""
        return {"format": self.format, "version": self.version}

    def error(self, text: str, path, **more) -> FewcellError:
        return FewcellError(text.format(path=path, expected=self.version, **more))


# ---- the kinds of model file, each with its sentences --------------------------------------------
EMBED = Kind(
    "napari-fewcell/embed", 1,
    missing="The weights file {path} does not exist; give the path of a napari-fewcell .pt file.",
    unreadable="{path} is not a readable napari-fewcell weights file (corrupt, or saved by another tool); "
               "use the shipped weights or one written by `fewcell pretrain`.",
    foreign="{path} is not a napari-fewcell embedding weights file; "
            "use the shipped weights or one written by `fewcell pretrain`.",
    old_version="{path} was written by weights format version {version}, "
                "but this napari-fewcell reads version {expected}; retrain it with `fewcell pretrain`.",
    damaged="{path} does not match the napari-fewcell network layout; retrain it with `fewcell pretrain`.",
)

MSD = Kind(
    "napari-fewcell/msd", 1,
    missing="The feature-extractor file {path} does not exist.",
    unreadable="{path} is not a napari-fewcell MSD feature extractor (unreadable).",
    foreign="{path} is not a napari-fewcell MSD feature extractor.",
    old_version="{path} is an MSD extractor of format version {version}; this napari-fewcell reads "
                "version {expected}.",
    damaged="{path} is damaged or does not match the MSD network layout.",
)

SEGNET = Kind(
    "napari-fewcell/segnet", 1,
    missing="The model file {path} does not exist; give the path of a model saved by napari-fewcell.",
    unreadable="{path} is not a napari-fewcell model (unreadable, or saved by another tool); "
               "train one with `fewcell pseudolabel --train-net` or the Partial labels widget.",
    foreign="{path} is not a napari-fewcell segmentation model; "
            "train one with `fewcell pseudolabel --train-net` or the Partial labels widget.",
    old_version="{path} was saved by segmentation-model format version {version}, but this "
                "napari-fewcell reads version {expected}; retrain it with this version.",
    damaged="{path} is damaged or does not match the segmentation network layout; retrain it.",
    others={EMBED.format: "{path} is a pre-trained embedding network for prompt segmentation "
                          "(`fewcell segment --weights`), not a trained segmentation model."},
)

PERCEPTRON = Kind(
    "napari-fewcell/perceptron", 1,
    missing="The model file {path} does not exist; give the path of a saved perceptron (.npz).",
    unreadable="{path} is not a napari-fewcell perceptron (unreadable); fit one with `fewcell fit` or the "
               "Few-shot support widget.",
    foreign="{path} is not a napari-fewcell perceptron; fit one with `fewcell fit`.",
    old_version="{path} is a perceptron of format version {version}, but this napari-fewcell reads "
                "version {expected}; fit it again on your support images.",
    damaged="{path} is damaged (its arrays do not fit together); fit the perceptron again.",
)

CHECKPOINT = Kind(
    "napari-fewcell/pretrain-checkpoint", 1,
    missing="The checkpoint {path} does not exist; give --resume the .ckpt file a `fewcell pretrain` run wrote.",
    unreadable="{path} is not a readable pre-training checkpoint (corrupt or cut short); start the run again "
               "without --resume, or resume from an older checkpoint.",
    foreign="{path} is not a napari-fewcell pre-training checkpoint; give --resume the .ckpt file of a run.",
    old_version="{path} is a checkpoint of format version {version}, but this napari-fewcell reads version "
                "{expected}; start the run again without --resume.",
    damaged="{path} does not fit this run's network or strategy (damaged, or written by another set-up); "
            "resume with the same settings or start again.",
)


def torch_reader(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def npz_reader(path: Path) -> dict:
    """An ``.npz`` written by :func:`save_npz` as ``{"format", "version", "meta", "arrays"}`` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    return {"format": meta.get("format"), "version": meta.get("version"), "meta": meta, "arrays": arrays}


def read(path, kind: Kind, reader: Callable[[Path], object] = torch_reader) -> dict:
    """The payload dict of a model file of ``kind``, checked: exists, readable, format, version."""
    path = Path(path)
    if not path.is_file():
        raise kind.error(kind.missing.replace("does not exist", "is a folder, not a file") if path.is_dir()
                         else kind.missing, path)
    try:
        payload = reader(path)
    except Exception:  # noqa: BLE001 - any failure to read means "not our file"
        raise kind.error(kind.unreadable, path) from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt != kind.format:
        raise kind.error(kind.others.get(fmt, kind.foreign), path)
    if payload.get("version") != kind.version:
        raise kind.error(kind.old_version, path, version=payload.get("version"))
    return payload


def build(path, kind: Kind, make: Callable[[], object]):
    """``make()`` (building a model from a checked payload); any failure is the kind's 'damaged' sentence."""
    try:
        return make()
    except Exception:  # noqa: BLE001
        raise kind.error(kind.damaged, path) from None


def load_network(path, kind: Kind, factory: Callable[[dict], torch.nn.Module]) -> tuple[torch.nn.Module, dict]:
    """(network, payload) of a torch model file: ``factory(payload["config"])`` loaded with its state dict."""
    payload = read(path, kind)

    def make():
        net = factory(payload["config"])
        net.load_state_dict(payload["state_dict"])
        return net

    return build(path, kind, make), payload


def state_dict(net: torch.nn.Module) -> dict:
    """A CPU copy of a network's state dict (what the files hold)."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def save(path, kind: Kind, payload: dict) -> Path:
    """Write ``{"format", "version", **payload}`` with ``torch.save``, atomically."""
    path = Path(path)
    full = {**kind.header, **payload}
    atomic_write(path, lambda tmp: torch.save(full, tmp))
    return path


def save_npz(path, kind: Kind, arrays: dict, meta: dict) -> Path:
    """Write plain arrays plus ``meta`` (JSON, with the kind's format and version) as a compressed ``.npz``."""
    path = Path(path)
    full = {**arrays, "meta": np.array(json.dumps({**meta, **kind.header}))}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **full)

    atomic_write(path, write)
    return path


def save_json(path, kind: Kind, card: dict) -> Path:
    """A readable JSON copy of a model's card (``{"format", "version", **card}``), written atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps({**kind.header, **card}, indent=2)))
    return path
