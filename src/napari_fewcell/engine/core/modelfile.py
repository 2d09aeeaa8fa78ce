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
from pathlib import Path
from typing import Callable

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

    def error(self, text: str, path, **more) -> FewcellError:
        return FewcellError(text.format(path=path, expected=self.version, **more))


def torch_reader(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def read(path, kind: Kind, reader: Callable[[Path], object] = torch_reader) -> dict:
    """The payload dict of a model file of ``kind``, checked: exists, readable, format, version."""
    path = Path(path)
    if not path.is_file():
        raise kind.error(kind.missing, path)
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


def state_dict(net: torch.nn.Module) -> dict:
    """A CPU copy of a network's state dict (what the files hold)."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def save(path, kind: Kind, payload: dict) -> Path:
    """Write ``{"format", "version", **payload}`` with ``torch.save``, atomically."""
    path = Path(path)
    full = {"format": kind.format, "version": kind.version, **payload}
    atomic_write(path, lambda tmp: torch.save(full, tmp))
    return path
