"""Device selection: CUDA, then MPS, then CPU, with an explicit override (and the allocator tuned once)."""
from __future__ import annotations

import torch

from .allocator import tune_allocator
from .errors import FewcellError
from .options import DEVICES, check_precision


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or an x86 CPU with AVX512-BF16 or
    AMX (elsewhere, a CPU would emulate it, slower than float32)."""
    if device.type == "cuda":  # not emulated (before Ampere, bfloat16 is emulated and slower than float32)
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without these probes: stay in float32
        return False


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """"bfloat16" or "float32": what a training under ``precision`` computes in on ``device``."""
    check_precision(precision)
    return "bfloat16" if precision == "bfloat16" or (precision == "auto" and native_bf16(device)) else "float32"


def training_autocast(device: torch.device, precision: str = "auto"):
    """The context a training step's forward pass runs in: bfloat16 autocast (weights, optimiser and loss stay
    float32) where :func:`resolve_precision` says bfloat16; otherwise plain float32."""
    use = resolve_precision(device, precision) == "bfloat16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)
