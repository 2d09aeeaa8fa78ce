"""Workflow 1 — prompt (one-shot) segmentation (paper 000 §3.2), adapted to the prompt at prompt time. The public
names are imported on first use (:mod:`..core.exports`): the parameters need no torch."""
from ..core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".adapt": ("PATH_NAMES", "Adaptation"),
    ".estimate": ("estimate_shown", "estimate_text"),
    ".annotated": ("crop_prompt_labels",),
    ".colour": ("colour_plan",),
    ".corrections": ("REACH", "apply_corrections", "corrections_from_edit", "empty_corrections", "local_changes",
                     "merge_corrections"),
    ".filters": ("generic_features",),
    ".params": ("ADAPT_CHOICES", "ADAPT_PATHS", "STROKE_REACHES", "PromptParams"),
    ".job": ("SegmentRequest", "SegmentResult", "colour_of", "plan_colour", "prompt_job", "segment",
             "segment_job"),
    ".segmenter": ("Prompt", "Segmenter"),
})
