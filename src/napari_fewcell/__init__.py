"""napari-fewcell: segment a whole microscopy image from a tiny annotated prompt."""
from .engine import FewcellError, Prompt, PromptParams, Segmenter, segment

__version__ = "0.1.0"
__all__ = ["FewcellError", "Prompt", "PromptParams", "Segmenter", "segment", "__version__"]
