"""napari-fewcell engine: numpy/torch in, numpy out. Knows nothing of Qt or napari.

Sub-packages (imports go one way, left to right): ``core`` (shared infrastructure) ← ``nets``
(the networks) ← the workflows ``prompt`` (1), ``partial`` (2), ``fewshot`` (3) ← ``suggest`` (4);
``training`` builds the shipped networks. docs/architecture.md draws the whole house.

The public names are imported on first use (:mod:`.core.exports`).
"""
from .core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".core.annotation": ("AnnotatedImage", "annotate"),
    ".core.errors": ("Cancelled", "FewcellError"),
    ".core.instances": ("instance_labels",),
    ".core.progress": ("Progress", "run"),
    ".fewshot": ("Extractors", "Perceptron", "PerceptronParams", "fit", "fit_iter", "support"),
    ".models": ("open_model",),
    ".partial": ("PseudoParams", "PseudoResult", "SegModel", "TrainParams", "pseudolabel", "pseudolabel_iter",
                 "train_iter"),
    ".prompt": ("Adaptation", "Prompt", "PromptParams", "Segmenter", "apply_corrections", "corrections_from_edit",
                "estimate_text", "segment"),
    ".suggest": ("Session", "SessionParams", "Suggestion", "SuggestParams", "scorer_for", "suggest_iter"),
})
