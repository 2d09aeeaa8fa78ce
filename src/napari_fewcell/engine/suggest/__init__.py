"""Workflow 4 — what to annotate next (paper 001): scores, the models that score, the pretext task,
tile suggestions and the suggest → annotate → accept → refit session."""
from .params import NO_MODEL, SCORES, SuggestParams
from .pretext import PretextParams, pretext_iter, pretext_labels
from .scorers import MSDScorer, PerceptronScorer, PromptScorer, Scorer, SegModelScorer, scorer_for, shipped_network
from .scores import augmentations, autocontrast, brightness, score_batch, sharpness
from .session import Session, SessionParams
from .tiles import Suggestion, candidates, suggest_iter

__all__ = ["MSDScorer", "NO_MODEL", "PerceptronScorer", "PretextParams", "PromptScorer", "SCORES", "Scorer",
           "SegModelScorer", "Session", "SessionParams", "SuggestParams", "Suggestion", "augmentations",
           "autocontrast", "brightness", "candidates", "pretext_iter", "pretext_labels", "score_batch", "scorer_for",
           "sharpness", "shipped_network", "suggest_iter"]
