"""napari-fewcell: segment a whole microscopy image from a tiny annotated prompt."""
from .engine import (
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

__version__ = "0.1.0"
__all__ = [
    "Extractors", "FewcellError", "Perceptron", "PerceptronParams", "Prompt", "PromptParams", "PseudoParams",
    "SegModel", "Segmenter", "TrainParams", "__version__", "annotate", "fit", "fit_iter", "instance_labels",
    "open_model", "pseudolabel", "pseudolabel_iter", "run", "segment", "support", "train_iter", "Session",
    "SessionParams", "SuggestParams", "Suggestion", "scorer_for", "suggest_iter",
]
