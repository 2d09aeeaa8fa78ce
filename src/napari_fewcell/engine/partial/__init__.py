"""Workflow 2 — partial labels → pseudo-labels (paper 000 §3.3) → a network of your own (stage 2). The public names
are imported on first use (:mod:`..core.exports`): the parameters need no torch."""
from ..core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".choice": ("describe_labeller",),
    ".job": ("PartialResult", "PseudoRequest", "TrainRequest", "network_labels_job", "pseudo_job", "train_job"),
    ".params": ("INITS", "PseudoParams", "TrainParams"),
    ".pseudo": ("PseudoResult", "describe_epoch", "pseudolabel", "pseudolabel_iter", "validate"),
    ".stage2": ("SegModel", "train_iter"),
})
