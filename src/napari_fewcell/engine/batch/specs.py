"""How a batch job's model is built where the units run (this process or a dask worker): small, picklable recipes.

Apart from ``cluster`` so that a run on this machine never imports dask.distributed (0.23 s of start-up).
"""
from __future__ import annotations

import dataclasses

from ..core.progress import run


@dataclasses.dataclass
class ModelFileSpec:
    """How a worker builds a saved model (a perceptron or a stage-2 network): the path must be readable there."""

    path: str
    device: str = "auto"
    tta: bool | None = None

    def build(self):
        from ..models import open_model

        return open_model(self.path, device=self.device, tta=self.tta)


@dataclasses.dataclass
class PromptSpec:
    """How a worker builds the prompt segmenter: the parameters and the prepared, adapted prompt (sent once)."""

    params: object  #: PromptParams
    prompt: object  #: Prompt (adapted on the client: its adaptation travels with it)

    def build(self):
        from ..prompt import Segmenter

        seg = Segmenter(self.params)
        run(seg.adapt_iter(self.prompt))  # found in the prompt's cache when the worker's device is the client's
        return seg.blocks_for(self.prompt)
