"""The Prompt segmentation widget's job: the engine's :func:`~..engine.prompt.segment_job` over what the widget read
from the layers (a big or lazy image: :func:`~..engine.prompt.prompt_job`, then block by block into a new zarr
array); and the progress text its bar shows. Runs on napari's worker thread."""
from __future__ import annotations

from ..engine import Progress, Segmenter
from ..engine.prompt import SegmentRequest, prompt_job, segment_job
from .jobs import default_progress_text
from .lazy import LazyTarget, segment_lazy


def request_of(seg: Segmenter, job: dict) -> SegmentRequest:
    """The engine request of what the widget read from the layers (``PromptSegmentationWidget._collect``); a big
    or lazy image is opened here, on the worker thread (only the boxes, with context, are read of a prompt)."""
    source, target = (x.open() if isinstance(x, LazyTarget) else x for x in (job["prompt"], job["target"]))
    return SegmentRequest(source, job["labels"], job["boxes"], [target], [job["name"]], seg.params,
                          corrections=job["corrections"], more=job["more"], stack=job["stack"],
                          instances=job["instances"])


def segment_gen(seg: Segmenter, job: dict):
    """The widget's job; returns (labels, prompt, provenance): the status shows the prompt's self-check, the layer
    keeps the provenance."""
    yield Progress(0, 0, "preparing the prompt")  # the status line says it while the big image opens
    request = request_of(seg, job)
    planes = {"box_planes": job["box_planes"]} if job["box_planes"] else {}
    if isinstance(job["target"], LazyTarget):  # a big or lazy image: block by block into a new zarr array
        seg, prompt, sentence = yield from prompt_job(request, seg)
        labels = yield from segment_lazy(seg, prompt, job["target"], request.images[0])
        return labels, prompt, {**seg.provenance(prompt), **planes, "instances": None, "colour": sentence}
    result = yield from segment_job(request, seg)
    return result.labels[0], result.prompt, {**result.provenance, **planes}


def progress_text(p: Progress) -> str:
    if p.message == "segmenting":
        return f"Segmenting: tile {p.done} of {p.total}"
    return default_progress_text(p)
