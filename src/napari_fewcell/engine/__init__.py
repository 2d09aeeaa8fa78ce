"""napari-fewcell engine: numpy/torch in, numpy out. Knows nothing of Qt or napari."""
from .annotation import AnnotatedImage, annotate
from .errors import Cancelled, FewcellError
from .features import Extractors
from .instances import instance_labels
from .perceptron import Perceptron, PerceptronParams, fit, fit_iter, open_model, support
from .partial import PseudoParams, PseudoResult, pseudolabel, pseudolabel_iter
from .prompt import Progress, Prompt, PromptParams, Segmenter, run, segment
from .segnet import SegModel, TrainParams, train_iter
from .active import Session, SessionParams
from .suggest import SuggestParams, Suggestion, scorer_for, suggest_iter

__all__ = [
    "AnnotatedImage", "Cancelled", "Extractors", "FewcellError", "Perceptron", "PerceptronParams", "Progress",
    "Prompt", "PromptParams", "PseudoParams", "PseudoResult", "SegModel", "Segmenter", "TrainParams", "annotate",
    "fit", "fit_iter", "instance_labels", "open_model", "pseudolabel", "pseudolabel_iter", "run", "segment",
    "support", "train_iter", "Session", "SessionParams", "SuggestParams", "Suggestion", "scorer_for", "suggest_iter",
]
