"""napari-fewcell: segment a whole microscopy image from a tiny annotated prompt."""
from .engine import (
    FewcellError, Prompt, PromptParams, PseudoParams, SegModel, Segmenter, TrainParams, annotate, instance_labels,
    pseudolabel, pseudolabel_iter, run, segment, train_iter,
)

__version__ = "0.1.0"
__all__ = [
    "FewcellError", "Prompt", "PromptParams", "PseudoParams", "SegModel", "Segmenter", "TrainParams", "__version__",
    "annotate", "instance_labels", "pseudolabel", "pseudolabel_iter", "run", "segment", "train_iter",
]
