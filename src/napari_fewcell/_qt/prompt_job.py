"""The Prompt segmentation widget's job: the engine's :func:`~..engine.prompt.segment_job` over what the widget read
from the layers (a big or lazy image: :func:`~..engine.prompt.prompt_job`, then block by block into a new zarr
array); and the progress text its bar shows. Runs on napari's worker thread."""
from __future__ import annotations

import dataclasses

from ..engine import Progress, Segmenter
from ..engine.prompt.job import SegmentRequest, prompt_job, provenance, segment_job
from .jobs import default_progress_text
from .lazy import LazyTarget, segment_lazy


@dataclasses.dataclass
class PromptJob:
    """What the widget read from the layers on the GUI thread for one Segment or live update."""

    target_layer: object  #: the Image layer to segment
    target: object  #: its plane, its whole stack, or a LazyTarget (a big or lazy image, block by block)
    prompt: object  #: the prompt image's plane, or a LazyTarget (only the box, with context, is read)
    labels: object  #: the prompt labels (of the plane; of the box only over a lazy image)
    boxes: list  #: the prompt boxes (y, x, h, w) in the prompt image's pixels
    key: tuple  #: the settings that make a Segmenter (weights, device, τ, attention, adapt)
    same_image: bool  #: the prompt image is the image to segment
    idx: tuple = ()  #: the plane's index in a stack (() for a 2D image or the whole stack)
    stack: bool = False  #: the whole stack, plane by plane
    instances: str | None = None  #: None (classes), "components" or "watershed"
    more: list = dataclasses.field(default_factory=list)  #: boxes on other planes: (plane, labels, boxes)
    box_planes: list | None = None  #: the plane of each box (boxes on several planes)
    corrections: list | None = None  #: the edits of the latest result: (plane, corrections) pairs
    plane_note: str = ""  #: what the status says of the planes the corrections were read from
    lazy: list = dataclasses.field(default_factory=list)  #: the LazyTarget written block by block (one or none)
    corrected: list | None = None  #: the result the corrections were painted on (ResultRecord.corrected)

    @property
    def name(self) -> str:
        return self.target_layer.name


def request_of(seg: Segmenter, job: PromptJob) -> SegmentRequest:
    """The engine request of what the widget read from the layers (``PromptSegmentationWidget._collect``); a big
    or lazy image is opened here, on the worker thread (only the boxes, with context, are read of a prompt)."""
    source, target = (x.open() if isinstance(x, LazyTarget) else x for x in (job.prompt, job.target))
    return SegmentRequest(source, job.labels, job.boxes, [target], [job.name], seg.params,
                          corrections=job.corrections, more=job.more, stack=job.stack, instances=job.instances,
                          corrected=job.corrected or ())


def segment_gen(seg: Segmenter, job: PromptJob):
    """The widget's job; returns (labels, prompt, provenance): the status shows the prompt's self-check, the layer
    keeps the provenance."""
    yield Progress(0, 0, "preparing the prompt")  # the status line says it while the big image opens
    request = request_of(seg, job)
    planes = {"box_planes": job.box_planes} if job.box_planes else {}
    if isinstance(job.target, LazyTarget):  # a big or lazy image: block by block into a new zarr array
        seg, prompt, sentence = yield from prompt_job(request, seg)
        labels = yield from segment_lazy(seg, prompt, job.target, request.images[0])
        return labels, prompt, {**provenance(seg, prompt, request, sentence), **planes}
    result = yield from segment_job(request, seg)
    return result.labels[0], result.prompt, {**result.provenance, **planes}


def progress_text(p: Progress) -> str:
    if p.message == "segmenting":
        return f"Segmenting: tile {p.done} of {p.total}"
    return default_progress_text(p)
