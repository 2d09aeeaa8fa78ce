"""Workflow 1 — prompt (one-shot) segmentation, paper 000 §3.2.

numpy in, numpy out; no Qt. Long work is a generator yielding :class:`Progress`
and returning the labels, so napari's ``thread_worker`` and the CLI's progress
bar drive the same code::

    seg = Segmenter()                        # shipped weights, auto device
    prompt = seg.prepare_prompt(img, labels, box=(y, x, 64, 64))
    out = seg.segment(other_img, prompt)     # uint8/uint16 labels, 0 = background
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Generator, Iterable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import attention
from .backbone import EmbedNet, load_model
from .device import select_device
from .errors import Cancelled, FewcellError
from .normalize import as_image2d, intensity_range, normalize

Box = tuple[int, int, int, int]  # y, x, h, w


@dataclasses.dataclass
class PromptParams:
    """Parameters shared by the widget, the CLI and the API."""

    tau: float | None = None  #: attention temperature; None = the one the weights were trained with
    attention: str = "prototypes"  #: "prototypes" (fast, default) or "exact" (every prompt pixel)
    prototypes: int = 64  #: k-means prototypes per class in the fast path
    tile: int = 512  #: tile edge for bounded-memory inference
    margin: int = 32  #: context pixels around each tile
    weights: str | None = None  #: path of a weights file; None = shipped weights
    device: str = "auto"  #: auto | cpu | cuda | mps

    def check(self) -> None:
        if self.attention not in ("prototypes", "exact"):
            raise FewcellError(f"Unknown attention '{self.attention}': choose 'prototypes' or 'exact'.")
        if self.tau is not None and not (np.isfinite(self.tau) and self.tau > 0):
            raise FewcellError(f"The temperature τ must be a positive number, not {self.tau}.")
        if self.prototypes < 1:
            raise FewcellError("The number of prototypes per class must be at least 1.")
        if self.tile < 64:
            raise FewcellError("The tile size must be at least 64 pixels.")


class Progress(NamedTuple):
    done: int
    total: int
    message: str


@dataclasses.dataclass
class Prompt:
    """A prepared prompt: its pixel embeddings and labels, reusable across images."""

    embeddings: torch.Tensor  # (M, D) on CPU
    labels: np.ndarray  # (M,) label values
    box: Box
    shape: tuple[int, int]  # (h, w) of the box
    _keys: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.labels)


def check_box(box: Iterable[int], shape: tuple[int, int], name: str = "prompt image") -> Box:
    """Validate a (y, x, h, w) box against an image shape."""
    try:
        y, x, h, w = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise FewcellError("A box is four numbers: Y X H W (top, left, height, width).") from None
    if h <= 0 or w <= 0:
        raise FewcellError(f"The box {y} {x} {h} {w} is empty; give it a positive height and width.")
    if y < 0 or x < 0 or y + h > shape[0] or x + w > shape[1]:
        raise FewcellError(
            f"The box Y={y} X={x} H={h} W={w} is not inside the {name} ({shape[0]}×{shape[1]}); "
            "move or shrink it so it lies within the image."
        )
    return y, x, h, w


def crop_prompt_labels(labels, box: Box, image_shape: tuple[int, int]) -> np.ndarray:
    """Labels of the box, from labels the size of the prompt image or exactly the box's size."""
    lab = np.asarray(labels)
    if lab.ndim == 3 and lab.shape[0] == 1:
        lab = lab[0]
    y, x, h, w = box
    if lab.shape == tuple(image_shape):
        lab = lab[y : y + h, x : x + w]
    elif lab.shape != (h, w):
        raise FewcellError(
            f"The prompt labels are {'×'.join(map(str, lab.shape))} but must be the size of the prompt image "
            f"({image_shape[0]}×{image_shape[1]}) or of the box ({h}×{w})."
        )
    if not np.issubdtype(lab.dtype, np.integer):
        if np.issubdtype(lab.dtype, np.floating) and np.isfinite(lab).all() and (lab == np.round(lab)).all():
            lab = lab.astype(np.int64)
        else:
            raise FewcellError("The prompt labels must be whole numbers (0 = background, 1..K = classes).")
    if lab.min() < 0:
        raise FewcellError("The prompt labels contain negative values; use 0 for background and 1..K for classes.")
    if len(np.unique(lab)) < 2:
        only = int(lab.flat[0])
        what = "background (0)" if only == 0 else f"class {only}"
        raise FewcellError(
            f"The prompt box holds only {what}; one class cannot be segmented against nothing — "
            "paint at least one structure and leave (or paint) some background in the box."
        )
    return lab


def _pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


class Segmenter:
    """A loaded embedding network plus the prompt-segmentation pipeline."""

    def __init__(self, params: PromptParams | None = None, model: EmbedNet | None = None):
        self.params = params or PromptParams()
        self.params.check()
        self.device = select_device(self.params.device)
        self.model = model.to(self.device).eval() if model is not None else load_model(self.params.weights, self.device)

    @property
    def tau(self) -> float:
        return float(self.params.tau if self.params.tau is not None else self.model.config.tau)

    @torch.inference_mode()
    def _embed(self, arr: np.ndarray, rng, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Embeddings (D, y1-y0, x1-x0) of a region of an (H, W, C) image."""
        t = torch.from_numpy(normalize(arr[y0:y1, x0:x1], rng))[None].to(self.device)
        t, h, w = _pad_to_multiple(t, self.model.multiple)
        return self.model(t)[0, :, :h, :w]

    def prepare_prompt(self, image, labels, box: Iterable[int]) -> Prompt:
        """Embed the prompt box (with its surrounding context) of ``image``; ``labels`` as for the CLI."""
        arr = as_image2d(image, "prompt image")
        box = check_box(box, arr.shape[:2])
        lab = crop_prompt_labels(labels, box, arr.shape[:2])
        y, x, h, w = box
        m = self.params.margin
        y0, x0 = max(0, y - m), max(0, x - m)
        y1, x1 = min(arr.shape[0], y + h + m), min(arr.shape[1], x + w + m)
        emb = self._embed(arr, intensity_range(arr), y0, y1, x0, x1)
        emb = emb[:, y - y0 : y - y0 + h, x - x0 : x - x0 + w]
        emb = emb.reshape(emb.shape[0], -1).T.float().cpu()
        return Prompt(emb, lab.reshape(-1), box, (h, w))

    def keys(self, prompt: Prompt) -> attention.PromptKeys:
        """The prompt's attention keys for this segmenter's settings (computed once per prompt)."""
        key = (self.params.attention, self.params.prototypes, str(self.device))
        if key not in prompt._keys:
            if self.params.attention == "exact":
                keys = attention.exact_keys(prompt.embeddings, prompt.labels)
            else:
                keys = attention.prototype_keys(prompt.embeddings, prompt.labels, self.params.prototypes)
            prompt._keys[key] = keys.to(self.device)
        return prompt._keys[key]

    def segment_iter(self, image, prompt: Prompt, confidence: bool = False) -> Generator[Progress, None, np.ndarray]:
        """Segment a whole 2D image tile by tile; yields Progress, returns the labels
        (with ``confidence``: a tuple of the labels and the winning class's probability, float16)."""
        arr = as_image2d(image)
        keys = self.keys(prompt)
        rng = intensity_range(arr)
        H, W = arr.shape[:2]
        T, m = self.params.tile, self.params.margin
        dtype = np.uint8 if keys.classes.max() <= 255 else np.uint16
        out = np.zeros((H, W), dtype)
        conf = np.zeros((H, W), np.float16) if confidence else None
        lut = torch.as_tensor(keys.classes.astype(np.int64), device=self.device)
        tiles = [(ty, tx) for ty in range(0, H, T) for tx in range(0, W, T)]
        yield Progress(0, len(tiles), "segmenting")
        for i, (ty, tx) in enumerate(tiles):
            ty1, tx1 = min(H, ty + T), min(W, tx + T)
            y0, x0 = max(0, ty - m), max(0, tx - m)
            y1, x1 = min(H, ty1 + m), min(W, tx1 + m)
            with torch.inference_mode():
                emb = self._embed(arr, rng, y0, y1, x0, x1)[:, ty - y0 : ty1 - y0, tx - x0 : tx1 - x0]
                d, h, w = emb.shape
                probs = attention.attend(emb.reshape(d, -1).T.float(), keys, self.tau)
                best, arg = probs.max(1)
                out[ty:ty1, tx:tx1] = lut[arg].reshape(h, w).cpu().numpy().astype(dtype)
                if conf is not None:
                    conf[ty:ty1, tx:tx1] = best.reshape(h, w).cpu().numpy()
            yield Progress(i + 1, len(tiles), "segmenting")
        return (out, conf) if confidence else out

    def segment(self, image, prompt: Prompt, progress: Callable[[Progress], None] | None = None) -> np.ndarray:
        return run(self.segment_iter(image, prompt), progress)


def run(gen: Generator, progress: Callable[[Progress], None] | None = None,
        cancelled: Callable[[], bool] | None = None):
    """Drive a progress generator to its end and return its value."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(p)
        if cancelled is not None and cancelled():
            gen.close()
            raise Cancelled("cancelled")


def segment(image, prompt_image, prompt_labels, box: Iterable[int], params: PromptParams | None = None) -> np.ndarray:
    """One call: segment ``image`` from a prompt box of ``prompt_image`` labelled by ``prompt_labels``.

    ``prompt_labels`` is either the size of ``prompt_image`` (only the box is read) or exactly
    the box's size; value v inside the box is class v (0 = background). Returns labels of
    ``image``'s height and width with the same values.
    """
    seg = Segmenter(params)
    return seg.segment(image, seg.prepare_prompt(prompt_image, prompt_labels, box))
