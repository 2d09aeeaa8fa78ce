"""napari-fewcell engine: numpy/torch in, numpy out. Knows nothing of Qt or napari."""
from .annotation import AnnotatedImage, annotate
from .errors import Cancelled, FewcellError
from .instances import instance_labels
from .partial import PseudoParams, PseudoResult, pseudolabel, pseudolabel_iter
from .prompt import Progress, Prompt, PromptParams, Segmenter, run, segment
from .segnet import SegModel, TrainParams, train_iter

__all__ = [
    "AnnotatedImage", "Cancelled", "FewcellError", "Progress", "Prompt", "PromptParams", "PseudoParams",
    "PseudoResult", "SegModel", "Segmenter", "TrainParams", "annotate", "instance_labels", "pseudolabel",
    "pseudolabel_iter", "run", "segment", "train_iter",
]
