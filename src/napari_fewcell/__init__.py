"""napari-fewcell: segment a whole microscopy image from a tiny annotated prompt."""
from .engine import (
    Adaptation,
    Extractors,
    FewcellError,
    Perceptron,
    PerceptronParams,
    Prompt,
    PromptParams,
    PseudoParams,
    Segmenter,
    SegModel,
    Session,
    SessionParams,
    Suggestion,
    SuggestParams,
    TrainParams,
    annotate,
    apply_corrections,
    corrections_from_edit,
    estimate_text,
    fit,
    fit_iter,
    instance_labels,
    open_model,
    pseudolabel,
    pseudolabel_iter,
    run,
    scorer_for,
    segment,
    suggest_iter,
    support,
    train_iter,
)

from .engine.core.version import __version__

__all__ = [
    "Extractors", "FewcellError", "Perceptron", "PerceptronParams", "Prompt", "PromptParams", "PseudoParams",
    "SegModel", "Segmenter", "TrainParams", "__version__", "annotate", "fit", "fit_iter", "instance_labels",
    "open_model", "pseudolabel", "pseudolabel_iter", "run", "segment", "support", "train_iter", "Session",
    "SessionParams", "SuggestParams", "Suggestion", "scorer_for", "suggest_iter",
    "Adaptation", "estimate_text", "apply_corrections", "corrections_from_edit",
]
