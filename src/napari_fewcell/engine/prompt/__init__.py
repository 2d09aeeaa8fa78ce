"""Workflow 1 — prompt (one-shot) segmentation (paper 000 §3.2), adapted to the prompt at prompt time."""
from .adapt import ADAPT_CHOICES, PATH_NAMES, Adaptation, estimate_text
from .annotated import crop_prompt_labels
from .colour import colour_plan
from .corrections import apply_corrections, corrections_from_edit, empty_corrections, merge_corrections
from .filters import generic_features
from .segmenter import Prompt, PromptParams, Segmenter, segment

__all__ = ["ADAPT_CHOICES", "PATH_NAMES", "Adaptation", "Prompt", "PromptParams", "Segmenter", "apply_corrections",
           "colour_plan", "corrections_from_edit", "crop_prompt_labels", "empty_corrections", "estimate_text",
           "generic_features", "merge_corrections", "segment"]
