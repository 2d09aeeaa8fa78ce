"""The soft Dice every training loop uses (with or without a mask of known pixels)."""
from __future__ import annotations

import torch


def soft_dice(prob: torch.Tensor, target: torch.Tensor, dim=None, eps: float = 1.0) -> torch.Tensor:
    """``(2 Σ p·t + ε) / (Σ p + Σ t + ε)`` summed over ``dim`` (all dimensions when None)."""
    if dim is None:
        return (2 * (prob * target).sum() + eps) / (prob.sum() + target.sum() + eps)
    return (2 * (prob * target).sum(dim) + eps) / (prob.sum(dim) + target.sum(dim) + eps)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice of ``sigmoid(logits)`` against a binary ``target`` (one foreground class)."""
    return 1 - soft_dice(torch.sigmoid(logits), target, eps=eps)
