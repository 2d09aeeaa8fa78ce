"""Workflow 1 — prompt (one-shot) segmentation, paper 000 §3.2.

numpy in, numpy out; no Qt. Long work is a generator yielding :class:`Progress`
and returning the labels, so napari's ``thread_worker`` and the CLI's progress
bar drive the same code::

    seg = Segmenter()                        # shipped weights, auto device
    prompt = seg.prepare_prompt(img, labels, box=(y, x, 64, 64))
    out = seg.segment(other_img, prompt)     # uint8/uint16 labels, 0 = background
    prompt.path, prompt.check                # the adaptation chosen and its self-check (see adapt.py)

The first segmentation with a prompt adapts to it once (``PromptParams.adapt``, see :mod:`.adapt`);
``Segmenter.adapt_iter(prompt)`` does it beforehand, e.g. to show the estimate before any image is done.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Generator, Iterable, Sequence

import numpy as np
import torch

from ..core.annotation import require_two_classes
from ..core.blocks import label_blocks_iter
from ..core.device import select_device
from ..core.errors import FewcellError
from ..core.geometry import Box, check_box, with_context
from ..core.image import as_image2d, intensity_range, luminance, normalize, planes_of
from ..core.lazy import LazyImage, LuminanceImage, open_image
from ..core.options import check_params
from ..core.progress import Progress, relay, run
from ..nets import attention
from ..nets.unet import EmbedNet, load_model
from .adapt import Adaptation, adapt_iter, box_embeddings
from .annotated import (
    CONTEXT,
    ONE_CLASS_HINT,
    BoxData,
    PromptSource,
    box_pixels,
    crop_prompt_labels,
    later_boxes_mask,
    require_contrast,
    require_prompt,
)
from .blocks import PromptBlocks
from .corrections import correction_parts, correction_sets
from .filters import forest_proba, window_features
from .params import PromptParams

CHECKS_KEPT = 16  #: at most this many boxes' self-check estimates kept by a segmenter (a few floats each)


@dataclasses.dataclass
class Prompt:
    """A prepared prompt: its pixel embeddings and labels, reusable across images."""

    embeddings: torch.Tensor  # (M, D) on CPU
    labels: np.ndarray  # (M,) label values
    box: Box
    shape: tuple[int, int]  # (h, w) of the box
    _keys: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: the annotated parts (boxes, correction strokes) for adaptation; empty: attention only
    sources: list[PromptSource] = dataclasses.field(default_factory=list, repr=False, compare=False)
    boxes: list[Box] = dataclasses.field(default_factory=list)  #: every box of the prompt
    #: what the status says about it: pixels of a box also in a later box, correction pixels inside a box
    #: (ignored: the box's labels win), correction strokes used and their pixels
    notes: dict = dataclasses.field(default_factory=dict)
    #: (M,) how many pixels each prompt pixel counts for in the attention (None: 1 each; correction strokes more)
    weights: np.ndarray | None = dataclasses.field(default=None, repr=False)
    path: str | None = None  #: the adaptation path chosen (after the first segmentation or ``adapt_iter``)
    check: dict = dataclasses.field(default_factory=dict)  #: the self-check: {path: estimated Dice on the box}
    unchecked: bool = False  #: the self-check could score no part of the prompt (Adaptation.unchecked)
    colour: bool = False  #: the prompt's image is colour (False: gray, or read as its luminance)
    _adapted: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def box_labels(self) -> np.ndarray:
        """(M',) the label values of the boxes' pixels alone (correction strokes left out): what the self-check
        scores, and what the sentence about it reads (``estimate_text``)."""
        return self.labels[box_pixels(self.sources)] if self.sources else self.labels

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.labels)


class Segmenter:
    """A loaded embedding network plus the prompt-segmentation pipeline."""

    def __init__(self, params: PromptParams | None = None, model: EmbedNet | None = None):
        self.params = params or PromptParams()
        check_params(self.params, PromptParams)
        self.device = select_device(self.params.device)
        self.own_weights = model is None  #: the weights came from params.weights (or are the shipped ones)
        self.model = model.to(self.device).eval() if model is not None else load_model(self.params.weights, self.device)
        #: the self-check's estimates of recent boxes ({(adapt_key, BoxData.boxes_key): check}): a correction stroke
        #: leaves them as they were (``check_strokes`` False), so the next prompt of the same boxes reuses them
        self.checks: dict = {}

    @property
    def tau(self) -> float:
        return float(self.params.tau if self.params.tau is not None else self.model.config.tau)

    @torch.inference_mode()
    def embed(self, arr: np.ndarray, rng, rows: slice, cols: slice, model: EmbedNet | None = None) -> torch.Tensor:
        """Embeddings (D, h, w) of the region ``arr[rows, cols]`` of an (H, W, C) image normalised with ``rng``
        (by ``model``, default the segmenter's)."""
        model = model or self.model
        return model.any_size(torch.from_numpy(normalize(arr[rows, cols], rng))[None].to(self.device))[0]

    def embed_box(self, arr: np.ndarray, box: Box, rng=None) -> torch.Tensor:
        """(h·w, D) embeddings (CPU) of the pixels of ``box`` in an (H, W, C) image, seen with their context."""
        y, x, h, w = box
        y0, y1, x0, x1 = with_context(box, self.params.margin, arr.shape[:2])
        emb = self.embed(arr, intensity_range(arr) if rng is None else rng, slice(y0, y1), slice(x0, x1))
        emb = emb[:, y - y0 : y - y0 + h, x - x0 : x - x0 + w]
        return emb.reshape(emb.shape[0], -1).T.float().cpu()

    def prepare_prompt(self, image, labels, box: Iterable[int]) -> Prompt:
        """Embed the prompt box (with its surrounding context) of ``image``; ``labels`` as for the CLI.

        ``image`` may be a :class:`LazyImage` (a big dask/zarr image): only the box with its context is read, and
        the intensity range comes from the same strided sample, so the prompt is the same as from memory."""
        return self.prepare_prompt_boxes(image, labels, [box])

    def prepare_prompt_boxes(self, image, labels, boxes: Sequence[Iterable[int]], corrections=None,
                             embeddings: Callable[[Box], torch.Tensor] | None = None, more=()) -> Prompt:
        """The prompt of one or several boxes of one image, plus correction strokes: every box's labelled pixels
        and every corrected pixel are keys of the attention, and adaptation (``PromptParams.adapt``) learns from
        them all (its self-check holds out each box in turn, in at most 5 groups; with one box, each quarter).

        ``labels``: the size of the image (only the boxes are read), or with one box its size. A pixel in two
        boxes counts once. The boxes are taken in a fixed order (top, left, height, width), whatever the order
        given, so the same boxes give the same labels in any order (``prompt.boxes`` lists them so).
        ``corrections``: None, an (H, W) int array the size of the image (−1: not corrected, v ≥ 0: the pixel is
        class v, e.g. from :func:`corrections_from_edit`), or a list of (image, corrections) pairs for strokes on
        other images (planes) than the prompt's. Corrected pixels
        inside a box are ignored (the box's labels win). ``image`` may be a :class:`LazyImage`. ``embeddings``:
        a function giving the (h·w, D) embeddings of a rectangle (y, x, h, w) of ``image`` that are already
        known (live update caches the whole image's), instead of running the network on it. ``more``: boxes on
        other images (other planes of a stack), as (image, labels, boxes) triples; they join the prompt alike.
        """
        image = self.view(image)
        if not len(boxes):
            raise FewcellError("No prompt box: draw a box and paint inside it.")
        checked = sorted(check_box(b, image.shape) for b in boxes)  # order-free: same boxes, same labels
        rng = image.intensity_range()
        parts, notes = [], {"overlap_pixels": 0}
        alone = len(boxes) == 1 and corrections is None and not more
        self.box_parts(image, rng, labels, checked, parts, notes, alone, embeddings)
        every = list(checked)
        for img, lab, bxs in more:
            img = self.view(img)
            bxs = sorted(check_box(b, img.shape) for b in bxs)
            self.box_parts(img, img.intensity_range(), lab, bxs, parts, notes, False, None)
            every += bxs
        notes["stroke_pixels"] = 0
        for img, corr in correction_sets(image, corrections):
            img = img if img is image else self.view(img, "corrected image")
            strokes, inside, outside = correction_parts(corr, checked)
            notes["inside_box_pixels"] = notes.get("inside_box_pixels", 0) + inside
            notes["stroke_pixels"] += outside
            r = img.intensity_range() if img is not image else rng
            for rect, mask, values in strokes:
                known = embeddings if img is image else None
                parts.append((*self.cut_part(img, r, rect, mask, "stroke", known), values))
        strokes = [s for _, s, _ in parts if s.kind == "stroke"]
        notes.update(strokes=len(strokes), stroke_keys=sum(s.size for s in strokes))
        lab = np.concatenate([v for _, _, v in parts])
        require_two_classes(lab, "prompt box holds" if len(parts) == 1 else "prompt boxes and corrections hold",
                            ONE_CLASS_HINT)
        require_contrast(parts)
        weights = np.concatenate([np.full(s.size, 1.0 if s.kind == "box" else self.params.stroke_weight)
                                  for _, s, _ in parts])
        return Prompt(torch.cat([e for e, _, _ in parts]), lab, checked[0], checked[0][2:],
                      sources=[s for _, s, _ in parts], boxes=every, notes=notes,
                      weights=None if (weights == 1).all() else weights, colour=image.is_colour())

    def view(self, image, name: str = "prompt image") -> LazyImage:
        """An image as this segmenter reads it: a :class:`LazyImage`, seen as its luminance under
        ``PromptParams.luminance``."""
        image = image if isinstance(image, LazyImage) else LazyImage(as_image2d(image, name), name)
        return LuminanceImage(image) if self.params.luminance else image

    def box_parts(self, image: LazyImage, rng, labels, boxes: list[Box], parts: list, notes: dict, alone: bool,
                  embeddings) -> None:
        """Append the parts (embeddings, source, labels) of the boxes of one image to ``parts`` (the later box
        wins where two overlap; counted in ``notes``); ``alone``: the only box of the prompt (two classes)."""
        for i, box in enumerate(boxes):
            lab = crop_prompt_labels(labels, box, image.shape, require=alone, several=len(boxes) > 1)
            keep = later_boxes_mask(box, boxes[i + 1 :])
            notes["overlap_pixels"] += int((~keep).sum())
            parts.append((*self.cut_part(image, rng, box, keep if not keep.all() else None, "box", embeddings),
                          lab[keep]))

    def cut_part(self, image: LazyImage, rng, rect: Box, mask=None, kind: str = "box", embeddings=None):
        """(embeddings (N, D) of the labelled pixels of ``rect``, its :class:`PromptSource`), read with context
        (``embeddings``: a function giving the rectangle's, instead of the network)."""
        y0, y1, x0, x1 = with_context(rect, max(CONTEXT, self.params.margin), image.shape)
        sub = image.read(slice(y0, y1), slice(x0, x1))
        inner = (rect[0] - y0, rect[1] - x0, rect[2], rect[3])
        emb = self.embed_box(sub, inner, rng) if embeddings is None else embeddings(rect)
        emb = emb if mask is None else emb[torch.from_numpy(mask.reshape(-1))]
        return emb, PromptSource.cut(sub, rng, inner, mask, kind)

    def prompt_from_boxes(self, items: Sequence[tuple[np.ndarray, np.ndarray, Sequence[Box]]],
                          subject: str = "annotated boxes hold") -> Prompt:
        """One prompt made of several annotated boxes: ``items`` = [(image (H, W, C), labels (H, W), boxes)].

        The boxes' pixels and labels are concatenated (each box is embedded with its own context); a pixel in
        two boxes of one image counts once (boxes in a fixed order). Together they must hold at least two classes
        (a single box may hold one).
        """
        embs, labs, first = [], [], None
        for arr, labels, boxes in items:
            arr = luminance(as_image2d(arr)) if self.params.luminance else arr
            for i, box in enumerate(boxes):
                y, x, h, w = box
                keep = later_boxes_mask(box, boxes[i + 1 :]).reshape(-1)
                embs.append(self.embed_box(arr, box)[torch.from_numpy(keep)])
                labs.append(np.asarray(labels)[y : y + h, x : x + w].reshape(-1)[keep])
                first = first or box
        if not embs:
            raise FewcellError("No annotated box to take a prompt from; draw a box and paint inside it.")
        lab = np.concatenate(labs)
        require_two_classes(lab, subject)
        return Prompt(torch.cat(embs), lab, first, first[2:])

    def provenance(self, prompt: Prompt, boxes=None) -> dict:
        """How a result was made, for the result layer's metadata and the label file: the prompt box(es), the
        weights file and its SHA-256, τ, the attention, the adaptation asked for and the path it took with its
        self-check, and the prompt's pixels per class."""
        from ..core.version import __version__

        p = self.params
        return {
            "version": __version__, "boxes": [list(map(int, b)) for b in (boxes or prompt.boxes or [prompt.box])],
            "corrections": {k: prompt.notes[k] for k in ("strokes", "stroke_pixels", "stroke_keys")
                            if k in prompt.notes},
            "weights": getattr(self.model, "weights_path", "an in-memory network"),
            "weights_sha256": getattr(self.model, "weights_sha256", None),
            "tau": self.tau, "attention": p.attention, "prototypes": p.prototypes, "balance": p.balance,
            "forest_balance": p.forest_balance, "sparse_balance": p.sparse_balance, "adapt": p.adapt,
            "adapt_path": prompt.path, "check": {k: round(float(v), 4) for k, v in prompt.check.items()},
            "unchecked": prompt.unchecked,
            "prompt_pixels": {str(int(c)): int((prompt.labels == c).sum()) for c in np.unique(prompt.labels)},
        }

    def make_keys(self, embeddings: torch.Tensor, labels: np.ndarray, weights=None) -> attention.PromptKeys:
        """Attention keys of prompt pixels (M, D) with labels (M,) and weights (M,), for this segmenter's settings."""
        if self.params.attention == "exact":
            keys = attention.exact_keys(embeddings, labels, weights)
        else:
            keys = attention.prototype_keys(embeddings, labels, self.params.prototypes, weights=weights)
        return keys.to(self.device)

    def keys(self, prompt: Prompt) -> attention.PromptKeys:
        """The prompt's attention keys for this segmenter's settings (computed once per prompt)."""
        key = (self.params.attention, self.params.prototypes, str(self.device), self.params.stroke_use)
        if key not in require_prompt(prompt, Prompt)._keys:
            emb, lab, w = prompt.embeddings, prompt.labels, prompt.weights
            if self.params.stroke_use == "forest" and prompt.sources:  # strokes teach the forests only
                boxes = box_pixels(prompt.sources)
                emb, lab, w = emb[torch.from_numpy(boxes)], lab[boxes], None if w is None else w[boxes]
            prompt._keys[key] = self.make_keys(emb, lab, w)
        return prompt._keys[key]

    def adapt_iter(self, prompt: Prompt, known: dict | None = None) -> Generator[Progress, None, Adaptation]:
        """Adapt to the prompt as ``params.adapt`` says, once per prompt and settings (cached on the prompt);
        sets ``prompt.path`` and ``prompt.check``. A prompt of boxes of several images (``prompt_from_boxes``) is
        not adapted under "auto". ``known``: the paths' estimates, made before on some of these boxes (workflow 2's
        choice checked them on the boxes it did not hold out): the check is not run again, and "auto" takes the path
        they name."""
        p, key = self.params, self.adapt_key()
        if key not in require_prompt(prompt, Prompt)._adapted:
            box = None
            if prompt.sources and p.adapt != "none":
                y = np.unique(prompt.labels, return_inverse=True)[1].reshape(-1)
                box = BoxData(prompt.embeddings, y, prompt.sources, self.tau, p.check_buffer, p.stroke_use,
                              p.check_strokes)
            digest = None if box is None else box.boxes_key()  # hashes the boxes' regions: once
            made = None if digest is None else (key, digest)
            ad = yield from adapt_iter(self.model, box, p, self.checks.get(made) if known is None else known)
            if made is not None and known is None:
                if len(self.checks) >= CHECKS_KEPT:  # cleared, not trimmed: Live and Segment may share it
                    self.checks.clear()
                self.checks[made] = dict(ad.check)
            if ad.model is not None:
                ad.keys = self.make_keys(box_embeddings(ad.model, prompt.sources), prompt.labels, prompt.weights)
            elif ad.path == "forest":  # no attention on this path: its keys only name the classes (no k-means)
                ad.keys = attention.exact_keys(prompt.embeddings, prompt.labels)
            prompt._adapted[key] = ad
        ad = prompt._adapted[key]
        prompt.path, prompt.check, prompt.unchecked = ad.path, dict(ad.check), ad.unchecked
        return ad

    def adapt_key(self) -> tuple:
        """What an adaptation depends on: the network (the weights file, or this object's own model) and the
        settings. A copy of this segmenter on another process (a cluster worker) finds the same key."""
        p = self.params
        net = (p.weights or "shipped") if self.own_weights else id(self.model)
        return (net, str(self.device), self.tau, p.adapt, p.attention, p.prototypes, p.trees, p.check_trees,
                p.finetune_steps, p.finetune_seconds, p.finetune_lr, p.check_buffer, p.fuse_embedding, p.stroke_use,
                p.check_strokes, p.balance, p.forest_balance, p.sparse_balance)

    def adapt(self, prompt: Prompt, progress: Callable[[Progress], None] | None = None) -> Adaptation:
        return run(self.adapt_iter(prompt), progress)

    def tile_probs(self, sub: np.ndarray, rng, win, fwin, keys, ad: Adaptation,
                   attended: torch.Tensor | None = None) -> torch.Tensor:
        """Class probabilities (h·w, C) of one tile: attention, then (fused path) the forest; the forest path
        runs no network. ``sub`` is the region read (``LazyImage.window``), ``win`` and ``fwin`` the tile with the
        network's and the filters' context in ``sub``'s coordinates. ``attended``: the tile's attention
        probabilities when they are already known (live update's cached embeddings), instead of the network."""
        if ad.path == "forest":
            probs = forest_proba(ad.forest, window_features(sub, rng, fwin), len(keys.classes))
            return self.forest_balanced(probs, ad)
        probs, emb = attended, None
        if probs is None or ad.embedding:
            emb = self.embed(sub, rng, *win.region, model=ad.model)[(slice(None), *win.inner)]
            emb = emb.reshape(emb.shape[0], -1).T.float()
        if probs is None:
            probs = attention.attend(emb, keys, self.tau)
        if ad.path == "none":  # attention alone: its classes weighed as PromptParams.balance (or auto) says
            balance = self.params.balance if ad.balance is None else ad.balance
            probs = attention.rebalance(probs, attention.key_counts(keys), balance)
        if ad.forest is not None:
            x = np.hstack([window_features(sub, rng, fwin), probs.float().cpu().numpy()]
                          + ([emb.cpu().numpy()] if ad.embedding else []))
            probs = self.forest_balanced(forest_proba(ad.forest, x, probs.shape[1]), ad)
        return probs

    def forest_balanced(self, probs: np.ndarray, ad: Adaptation) -> torch.Tensor:
        """A forest's class probabilities, each class's weighed as PromptParams.forest_balance says."""
        probs = torch.from_numpy(probs).to(self.device)
        if not self.params.forest_balance or ad.counts is None:
            return probs
        return attention.rebalance(probs, torch.from_numpy(ad.counts).float(), self.params.forest_balance)

    def blocks_for(self, prompt: Prompt, confidence: bool = False) -> PromptBlocks:
        """This segmenter and an adapted prompt as a :class:`~..core.blocks.BlockModel` (big images, clusters)."""
        ad = self.adapted(prompt)
        if ad is None:
            raise FewcellError("Adapt to the prompt first (Segmenter.adapt or adapt_iter).")
        return PromptBlocks(self, prompt, ad, confidence)

    def path_keys(self, prompt: Prompt, ad: Adaptation) -> attention.PromptKeys:
        """The keys a tile attends to on the prompt's adapted path: the path's own (fine-tuned, forest), else the
        prompt's."""
        return self.keys(prompt) if ad.keys is None else ad.keys

    def adapted(self, prompt: Prompt) -> Adaptation | None:
        return prompt._adapted.get(self.adapt_key())

    def segment_iter(self, image, prompt: Prompt, confidence: bool = False) -> Generator[Progress, None, np.ndarray]:
        """Segment a whole 2D image tile by tile; yields Progress, returns the labels
        (with ``confidence``: a tuple of the labels and the winning class's probability, float16)."""
        arr = as_image2d(image)
        yield from self.adapt_iter(prompt)
        model = self.blocks_for(prompt, confidence)
        image = LazyImage(arr)
        out = np.zeros(arr.shape[:2], model.label_dtype())
        out = (out, np.zeros(arr.shape[:2], np.float16)) if confidence else out
        return (yield from label_blocks_iter(model, image, out))

    def segment_stack_iter(self, stack, prompt: Prompt) -> Generator[Progress, None, np.ndarray]:
        """Segment every plane of a stack (Z×H×W, Z×H×W×3; a 2D image is a stack of one) with one prompt; yields
        Progress over planes (after every tile, so Cancel is quick) and returns the labels stack."""
        planes, _ = planes_of(stack, "stack")
        yield from self.adapt_iter(prompt)
        out = None
        for z, plane in enumerate(planes):
            labels = yield from relay(self.segment_iter(plane, prompt),
                                      Progress(z, len(planes), f"segmenting plane {z + 1} of {len(planes)}"))
            out = np.zeros((len(planes), *labels.shape), labels.dtype) if out is None else out
            out[z] = labels
        yield Progress(len(planes), len(planes), "segmenting planes")
        return out

    def segment_lazy_iter(self, image, prompt: Prompt, out, todo=None, on_block=None) -> Generator:
        """Segment a big image (a :class:`LazyImage`, or anything :func:`open_image` takes) block by block into
        ``out`` (a zarr or numpy array of its height and width); only one block is ever in memory."""
        image = image if isinstance(image, LazyImage) else open_image(image)
        yield from self.adapt_iter(prompt)
        return (yield from label_blocks_iter(self.blocks_for(prompt), image, out, todo, on_block))

    def segment(self, image, prompt: Prompt, progress: Callable[[Progress], None] | None = None) -> np.ndarray:
        return run(self.segment_iter(image, prompt), progress)
