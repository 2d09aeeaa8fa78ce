"""Workflow 1 — prompt (one-shot) segmentation (paper 000 §3.2)."""
from .segmenter import Prompt, PromptParams, Segmenter, crop_prompt_labels, segment

__all__ = ["Prompt", "PromptParams", "Segmenter", "crop_prompt_labels", "segment"]
