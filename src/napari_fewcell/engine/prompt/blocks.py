"""A segmenter and an adapted prompt applied block by block: the prompt's :class:`~..core.blocks.BlockModel`."""
from __future__ import annotations

from typing import Any, Generator, Protocol

import numpy as np
import torch

from ..core.blocks import block_windows, label_dtype_for, local
from ..core.errors import FewcellError
from ..core.lazy import LazyImage, LuminanceImage
from ..core.progress import Progress
from ..nets.attention import PromptKeys
from .adapt import Adaptation
from .filters import FEATURE_MARGIN
from .params import PromptParams


class TileSegmenter(Protocol):
    """What block-by-block segmentation needs of a :class:`~.segmenter.Segmenter` (which imports this module, so
    this module names what it uses instead of importing it back)."""

    params: PromptParams
    device: torch.device

    def path_keys(self, prompt: Any, ad: Adaptation) -> PromptKeys: ...

    def tile_probs(self, sub: np.ndarray, rng, win, fwin, keys: PromptKeys, ad: Adaptation) -> torch.Tensor: ...


class PromptBlocks:
    """A segmenter and an adapted prompt applied block by block (a :class:`~..core.blocks.BlockModel`): the
    tiles and their context are those of the in-memory path, so the labels are the same pixel for pixel."""

    verb = "segmenting"

    def __init__(self, seg: TileSegmenter, prompt: Any, ad: Adaptation, confidence: bool = False):
        """``prompt``: a :class:`~.segmenter.Prompt` (its ``colour`` is read), ``ad`` its adaptation."""
        self.seg, self.prompt, self.ad, self.confidence = seg, prompt, ad, confidence
        self.keys = seg.path_keys(prompt, ad)
        self.tile = seg.params.tile
        self.lut = torch.as_tensor(self.keys.classes.astype(np.int64), device=seg.device)

    def label_dtype(self) -> np.dtype:
        return label_dtype_for(self.keys.classes)

    def plan(self, image: LazyImage):
        """The image's intensity range, and whether it is read as its luminance: under
        ``PromptParams.luminance``, or a colour image with a gray prompt. A gray image with a colour prompt is
        refused (the prompt must be made in gray: ``colour_plan`` says when)."""
        colour, luminance = image.is_colour(), self.seg.params.luminance
        if self.prompt.colour and not colour and not luminance:
            raise FewcellError(f"The {image.name} is gray but the prompt was made from a colour image; make the "
                               "prompt with PromptParams(luminance=True) to segment both as gray.")
        gray = luminance or (colour and not self.prompt.colour)
        return (LuminanceImage(image).intensity_range() if gray else image.intensity_range()), gray

    def block_iter(self, image: LazyImage, plan, block) -> Generator[Progress, None, np.ndarray]:
        seg, (y, x, h, w), (rng, gray) = self.seg, block, plan
        image = LuminanceImage(image) if gray else image
        margin = seg.params.margin
        uses_filters = self.ad.forest is not None  # the fused and forest paths
        read_margin = max(margin, FEATURE_MARGIN) if uses_filters else margin
        out = np.zeros((h, w), self.label_dtype())
        conf = np.zeros((h, w), np.float16) if self.confidence else None
        tiles = block_windows(block, image.shape, self.tile, read_margin)
        for i, outer in enumerate(tiles):
            sub = image.window(outer)
            win = local(outer.widen(margin, image.shape), outer)
            fwin = local(outer.widen(FEATURE_MARGIN, image.shape), outer) if uses_filters else None
            with torch.inference_mode():
                probs = seg.tile_probs(sub, rng, win, fwin, self.keys, self.ad)
                th, tw = outer.ty1 - outer.ty, outer.tx1 - outer.tx
                best, arg = probs.max(1)
                rows, cols = slice(outer.ty - y, outer.ty1 - y), slice(outer.tx - x, outer.tx1 - x)
                out[rows, cols] = self.lut[arg].reshape(th, tw).cpu().numpy().astype(out.dtype)
                if conf is not None:
                    conf[rows, cols] = best.reshape(th, tw).cpu().numpy()
            yield Progress(i + 1, len(tiles), "segmenting")
        return (out, conf) if self.confidence else out
