"""Workflow 4 — what to annotate next (paper 001): scores, the models that score, the pretext task, tile suggestions
and the suggest → annotate → accept → refit session. The public names are imported on first use
(:mod:`..core.exports`): the parameters need no torch."""
from ..core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".job": ("SuggestRequest", "SuggestResult", "first_scorer_iter", "suggest_job"),
    ".params": ("MODELS", "NO_MODEL", "SCORERS", "SCORES", "PretextParams", "SessionParams", "SuggestParams"),
    ".pretext": ("pretext_iter", "pretext_labels"),
    ".scorers": ("MSDScorer", "PerceptronScorer", "PromptScorer", "Scorer", "SegModelScorer", "scorer_for",
                 "shipped_network"),
    ".scores": ("augmentations", "autocontrast", "brightness", "score_batch", "sharpness"),
    ".session": ("Session",),
    ".tiles": ("Suggestion", "candidates", "suggest_iter"),
})
