"""Workflow 1 as one request and one job. :class:`SegmentRequest` holds everything a prompt segmentation needs (the
prompt, the images, the parameters); :func:`prompt_job` turns its prompt into an adapted :class:`Prompt` (the colour
plan, the boxes and corrections, the adaptation and its self-check) and :func:`segment_job` segments its images
with it. The faces are thin over them: the widget maps layers to a request and the result to a layer, the CLI runs
:func:`prompt_job` and then its batch of files (engine/batch), and :func:`~.segmenter.segment` runs
:func:`segment_job`."""
from __future__ import annotations

import dataclasses
from typing import Generator, Sequence

import numpy as np

from ..core.errors import FewcellError
from ..core.geometry import Box, box_values
from ..core.image import is_colour
from ..core.instances import instance_labels
from ..core.lazy import LazyImage
from ..core.options import INSTANCE_METHODS, check_params
from ..core.progress import Progress, run
from .colour import colour_plan
from .corrections import local_changes
from .params import PromptParams
from .segmenter import Prompt, Segmenter


@dataclasses.dataclass
class SegmentRequest:
    """One prompt segmentation. Annotation has one meaning: inside a box, label value v is class v and 0 is
    background; outside the boxes nothing is known."""

    prompt_image: object  #: (H, W[, C]) array or LazyImage holding the boxes (only the boxes, with context, are read)
    prompt_labels: object  #: labels the size of the prompt image (only the boxes are read), or with one box its size
    boxes: Sequence[Box]  #: (y, x, h, w) prompt boxes of the prompt image, in any order
    images: Sequence = ()  #: what to segment: 2D images (arrays or LazyImages), or stacks when ``stack``
    names: Sequence[str] = ()  #: the images' names, for the sentences (default "image 1", …)
    params: PromptParams = dataclasses.field(default_factory=PromptParams)
    #: correction strokes: None, an (H, W) array of the prompt image (−1: none, v: class v), or (image, array) pairs
    corrections: object = None
    more: Sequence = ()  #: boxes on other planes of a stack: (image, labels, boxes) triples
    stack: bool = False  #: every image is a stack (Z×H×W), segmented plane by plane into one labels stack
    instances: str | None = None  #: None (class labels), "components" or "watershed" (one label per object)
    #: per image, None or (the labels the strokes were painted on, the corrections array on that image): with
    #: ``params.stroke_reach`` "local" the new result changes only near the strokes (:func:`local_changes`)
    corrected: Sequence = ()

    def check(self) -> None:
        check_params(self.params, PromptParams)
        if self.corrected and len(self.corrected) != len(self.images):
            raise FewcellError(f"The request gives {len(self.corrected)} corrected results for {len(self.images)} "
                               "images; give one per image (None where there is none).")
        if self.instances not in (None, *INSTANCE_METHODS):
            raise FewcellError(f"Unknown instance method '{self.instances}': choose {' or '.join(INSTANCE_METHODS)}.")
        if self.names and len(self.names) != len(self.images):
            raise FewcellError(f"The request names {len(self.names)} images but holds {len(self.images)}; give "
                               "one name per image.")

    def image_names(self) -> list[str]:
        return list(self.names) or [f"image {i + 1}" for i in range(len(self.images))]


@dataclasses.dataclass
class SegmentResult:
    labels: list[np.ndarray]  #: one labels array per image (a stack's: Z×H×W)
    prompt: Prompt  #: the adapted prompt: its path, self-check and notes
    provenance: dict  #: how the labels were made (the result layer's metadata, the files' description)
    colour: str | None  #: the sentence of the colour plan (a colour prompt with gray images, or the reverse)


def colour_of(image, name: str = "image") -> bool:
    return image.is_colour() if isinstance(image, LazyImage) else is_colour(image, name)


def plan_colour(request: SegmentRequest) -> tuple[PromptParams, str | None]:
    """The request's parameters with ``luminance`` set when the prompt and the images are not all of one kind
    (colour or gray), and the sentence saying so (None when they are)."""
    names = request.image_names()
    luminance, sentence = colour_plan(colour_of(request.prompt_image, "prompt image"),
                                      [colour_of(i, n) for i, n in zip(request.images, names)], names)
    params = dataclasses.replace(request.params, luminance=True) if luminance else request.params
    return params, sentence


def prompt_job(request: SegmentRequest, segmenter: Segmenter | None = None
               ) -> Generator[Progress, None, tuple[Segmenter, Prompt, str | None]]:
    """Check the request, plan the colour, prepare the prompt (boxes, planes, corrections) and adapt to it; returns
    (the segmenter that reads the images as planned, the adapted prompt, the colour sentence). ``segmenter``: one
    already holding the network (the widget keeps one per settings), else one is made from the parameters."""
    request.check()
    params, sentence = plan_colour(request)
    seg = segmenter if segmenter is not None and segmenter.params == params else None
    if seg is None:
        seg = Segmenter(params, model=segmenter.model if segmenter is not None else None)
        if segmenter is not None:  # the self-check estimates it keeps are keyed by the settings: safe to share
            seg.checks = segmenter.checks
    prompt = seg.prepare_prompt_boxes(request.prompt_image, request.prompt_labels, request.boxes,
                                      request.corrections, more=request.more)
    yield from seg.adapt_iter(prompt)
    return seg, prompt, sentence


def segment_job(request: SegmentRequest, segmenter: Segmenter | None = None
                ) -> Generator[Progress, None, SegmentResult]:
    """:func:`prompt_job`, then every image of the request segmented (a stack plane by plane), numbered into
    objects when ``instances`` asks; yields Progress (Cancel between two tiles), returns a :class:`SegmentResult`."""
    seg, prompt, sentence = yield from prompt_job(request, segmenter)
    out = []
    corrected = list(request.corrected) or [None] * len(request.images)
    for image, fixed in zip(request.images, corrected):
        step = seg.segment_stack_iter if request.stack else seg.segment_iter
        labels = yield from step(image, prompt)
        if fixed is not None and seg.params.stroke_reach == "local":
            labels = local_changes(fixed[0], labels, fixed[1]).astype(labels.dtype, copy=False)
        if request.instances:
            yield Progress(0, 0, "numbering the objects")
            labels = instance_labels(labels, request.instances)
        out.append(labels)
    return SegmentResult(out, prompt, provenance(seg, prompt, request, sentence), sentence)


def provenance(seg: Segmenter, prompt: Prompt, request: SegmentRequest, sentence: str | None) -> dict:
    """How a request's labels were made: the segmenter's provenance of the prompt, the instance method, the colour
    sentence (the result layer's metadata, the files' description)."""
    return {**seg.provenance(prompt), "instances": request.instances, "colour": sentence}


def segment(image, prompt_image, prompt_labels, box: Sequence[int], params: PromptParams | None = None) -> np.ndarray:
    """One call: segment ``image`` from a prompt box of ``prompt_image`` labelled by ``prompt_labels``.

    ``prompt_labels`` is either the size of ``prompt_image`` (only the box is read) or exactly
    the box's size; value v inside the box is class v (0 = background). Returns labels of
    ``image``'s height and width with the same values. A colour image with a gray one is read as gray (both).
    """
    request = SegmentRequest(prompt_image, prompt_labels, [box_values(box)], [image], params=params or PromptParams())
    return run(segment_job(request)).labels[0]
