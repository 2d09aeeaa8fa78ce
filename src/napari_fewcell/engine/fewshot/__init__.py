"""Workflow 3 — a perceptron over MSD feature maps, fitted on a few support images (paper 002). The public names are
imported on first use (:mod:`..core.exports`): the parameters need no torch."""
from ..core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".features": ("EXTRAS", "Extractors"),
    ".params": ("INTENSITIES", "PerceptronParams"),
    ".job": ("FitRequest", "fit", "fit_iter", "fit_job", "fit_report"),
    ".perceptron": ("Perceptron",),
    ".support_set": ("support",),
})
