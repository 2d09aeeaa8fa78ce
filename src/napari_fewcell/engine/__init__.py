"""napari-fewcell engine: numpy/torch in, numpy out. Knows nothing of Qt or napari."""
from .errors import Cancelled, FewcellError
from .prompt import Progress, Prompt, PromptParams, Segmenter, segment

__all__ = ["Cancelled", "FewcellError", "Progress", "Prompt", "PromptParams", "Segmenter", "segment"]
