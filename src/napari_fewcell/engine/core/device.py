"""Device selection: CUDA, then MPS, then CPU, with an explicit override (and the allocator tuned once)."""
from __future__ import annotations

import torch

from .allocator import tune_allocator
from .errors import FewcellError

DEVICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name`` (auto|cpu|cuda|mps); the first call also tunes the C allocator for
    CPU inference (``allocator.py``)."""
    tune_allocator()
    name = (name or "auto").lower()
    if name not in DEVICES:
        raise FewcellError(f"Unknown device '{name}': choose one of {', '.join(DEVICES)}.")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise FewcellError(
            "CUDA was requested but no CUDA GPU is available to PyTorch here; "
            "use --device cpu (or auto)."
        )
    if name == "mps" and not mps:
        raise FewcellError("MPS was requested but is not available here; use --device cpu (or auto).")
    return torch.device(name)
