"""Workflow 2 — partial labels → pseudo-labels (paper 000 §3.3) → a network of your own (stage 2)."""
from .choice import describe_labeller
from .pseudo import PseudoParams, PseudoResult, describe_epoch, pseudolabel, pseudolabel_iter, validate
from .stage2 import SegModel, TrainParams, train_iter

__all__ = ["PseudoParams", "PseudoResult", "SegModel", "TrainParams", "describe_epoch", "describe_labeller",
           "pseudolabel", "pseudolabel_iter", "train_iter", "validate"]
