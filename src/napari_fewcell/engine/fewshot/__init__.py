"""Workflow 3 — a perceptron over MSD feature maps, fitted on a few support images (paper 002)."""
from .features import EXTRAS, Extractors
from .perceptron import Perceptron, PerceptronParams, fit, fit_iter
from .support import support

__all__ = ["EXTRAS", "Extractors", "Perceptron", "PerceptronParams", "fit", "fit_iter", "support"]
