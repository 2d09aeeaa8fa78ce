"""napari-fewcell engine: numpy/torch in, numpy out. Knows nothing of Qt or napari.

Sub-packages (imports go one way, left to right): ``core`` (shared infrastructure) ← ``nets``
(the networks) ← the workflows ``prompt`` (1), ``partial`` (2), ``fewshot`` (3) ← ``suggest`` (4);
``training`` builds the shipped networks. docs/architecture.md draws the whole house.
"""
from .core.annotation import AnnotatedImage, annotate
from .core.errors import Cancelled, FewcellError
from .core.instances import instance_labels
from .core.progress import Progress, run
from .fewshot import Extractors, Perceptron, PerceptronParams, fit, fit_iter, support
from .models import open_model
from .partial import PseudoParams, PseudoResult, SegModel, TrainParams, pseudolabel, pseudolabel_iter, train_iter
from .prompt import (
    Adaptation,
    Prompt,
    PromptParams,
    Segmenter,
    apply_corrections,
    corrections_from_edit,
    estimate_text,
    segment,
)
from .suggest import Session, SessionParams, Suggestion, SuggestParams, scorer_for, suggest_iter

__all__ = [
    "AnnotatedImage", "Cancelled", "Extractors", "FewcellError", "Perceptron", "PerceptronParams", "Progress",
    "Prompt", "PromptParams", "PseudoParams", "PseudoResult", "SegModel", "Segmenter", "TrainParams", "annotate",
    "fit", "fit_iter", "instance_labels", "open_model", "pseudolabel", "pseudolabel_iter", "run", "segment",
    "support", "train_iter", "Session", "SessionParams", "SuggestParams", "Suggestion", "scorer_for", "suggest_iter",
    "Adaptation", "estimate_text", "apply_corrections", "corrections_from_edit",
]
