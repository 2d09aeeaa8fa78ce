"""Scores of workflow 4 (paper 001): how much a model would learn from a tile.

- ``consistency`` (paper 001, Eq. 4): the model's prediction on the tile against its
  predictions on three augmented versions — auto-contrast, brightness ×m and sharpness ×m
  (Pillow's ``ImageOps.autocontrast`` / ``ImageEnhance`` semantics, implemented on tensors) —
  as pixel-wise binary cross entropy, averaged over the tile's pixels and summed over the three
  augmentations. Large = inconsistent = informative.
- ``entropy``: mean pixel-wise Shannon entropy of the prediction.
- ``mc-dropout``: 10 passes with dropout (p = 0.5) on the input of the model's last layer,
  entropy of the mean prediction (paper 001 §4.1, after Gal & Ghahramani).
- ``random``: a seeded uniform draw.
- ``coverage`` (no model): tiles that together cover the images' kinds of texture, each kind once
  (:mod:`.coverage`); the cold start, before any tile is annotated.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .params import NO_MODEL, SuggestParams
from .scorers import Scorer

EPS = 1e-6


# ---- augmentations (Pillow semantics on float tensors in [0, 1]) ------------------------------
def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast`` (cutoff 0): each channel of each image stretched from its min–max
    to [0, 1]; a constant channel is left as it is. x: (N, C, H, W)."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    flat = span <= 0
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(span), span))


def brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Brightness(im).enhance(factor)``: a blend with black, i.e. x·factor, clipped."""
    return (x * factor).clamp(0, 1)


_SMOOTH = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13  # ImageFilter.SMOOTH


def sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Sharpness(im).enhance(factor)``: a blend of the image with its SMOOTH-filtered
    version (3×3 kernel [1 1 1; 1 5 1; 1 1 1]/13, border pixels left unfiltered as Pillow does),
    ``smooth + factor·(x − smooth)``, clipped."""
    c = x.shape[1]
    k = _SMOOTH.to(x)[None, None].expand(c, 1, 3, 3)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(x, k, groups=c)
    return (smooth + factor * (x - smooth)).clamp(0, 1)


def augmentations(x: torch.Tensor, magnitude: float) -> list[torch.Tensor]:
    return [autocontrast(x), brightness(x, magnitude), sharpness(x, magnitude)]


def versions(x: torch.Tensor, p: SuggestParams) -> list[torch.Tensor]:
    """The versions of the tiles x that the score ``p.score`` passes through the model: the tiles, and for
    consistency their three augmentations too (none for the scores that need no model)."""
    if p.score in NO_MODEL:
        return []
    return [x, *augmentations(x, p.magnitude)] if p.score == "consistency" else [x]


# ---- scores on predictions (N, K, h, w) ------------------------------------------------------
def cross_entropy(p: torch.Tensor, q: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """Pixel-mean cross entropy of prediction q against target p, per image (N,)."""
    q = q.clamp(EPS, 1 - EPS)
    if exclusive:
        return -(p * q.log()).sum(1).mean((1, 2))
    return -(p * q.log() + (1 - p) * (1 - q).log()).sum(1).mean((1, 2))


def entropy(p: torch.Tensor, exclusive: bool) -> torch.Tensor:
    return cross_entropy(p, p, exclusive)


@torch.inference_mode()
def score_batch(scorer: Scorer, x: torch.Tensor, p: SuggestParams,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Scores (N,) of a batch of normalised tiles x (N, 3, h, w), already at scoring resolution."""
    if p.score == "random":
        return torch.rand(x.shape[0], generator=generator).numpy()
    if p.score == "consistency":
        # one forward pass per version: a batch four times larger runs 1.5–2× slower per tile on a CPU
        base, *augmented = [scorer.predict(v) for v in versions(x, p)]
        total = sum(cross_entropy(base, q, scorer.exclusive) for q in augmented)
        return total.float().cpu().numpy()
    m = scorer.maps(x)
    if p.score == "entropy":
        return entropy(scorer.head(m), scorer.exclusive).float().cpu().numpy()
    mean = 0
    m = m / (1 - p.dropout)  # once, not per pass: with a 0/1 mask (m·k)/(1−p) and (m/(1−p))·k are the same floats
    if p.dropout == 0.5:  # a fair coin per value: the bits of random bytes, eight per byte (a float draw each: 2–5×
        def keep():      # slower; a random byte each: 2× slower)
            n = m.numel()
            byte = torch.empty((n + 7) // 8, dtype=torch.uint8).random_(generator=generator)
            return torch.from_numpy(np.unpackbits(byte.numpy(), count=n)).view(m.shape).to(m.device, m.dtype)
    else:
        def keep():
            return (torch.rand(m.shape, generator=generator) >= p.dropout).to(m.device, m.dtype)
    for _ in range(p.passes):
        mean = mean + scorer.head(m * keep())
    return entropy(mean / p.passes, scorer.exclusive).float().cpu().numpy()
