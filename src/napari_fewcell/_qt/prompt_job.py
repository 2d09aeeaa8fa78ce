"""The Prompt segmentation widget's job: prepare the prompt, adapt to it, segment (a 2D image, a stack, or a big
image block by block), number the objects; and the progress text its bar shows. Runs on napari's worker thread."""
from __future__ import annotations

import dataclasses

from ..engine import Progress, Segmenter, instance_labels
from ..engine.core.image import is_colour
from ..engine.prompt import colour_plan
from .jobs import default_progress_text
from .lazy import LazyTarget, segment_lazy


def segment_gen(seg: Segmenter, job: dict):
    """Prepare the prompt, adapt to it, then segment (the engine generator the job runs); returns
    (labels, prompt, provenance): the status shows the prompt's self-check, the layer keeps the provenance."""
    yield Progress(0, 0, "preparing the prompt")
    source = job["prompt"]  # a LazyTarget: only the boxes (with context) are read
    source = source.open() if isinstance(source, LazyTarget) else source
    target = job["target"].open() if isinstance(job["target"], LazyTarget) else job["target"]
    luminance, sentence = colour_plan(is_colour(source), [is_colour(target)], [job["name"]])
    seg = Segmenter(dataclasses.replace(seg.params, luminance=True), model=seg.model) if luminance else seg
    prompt = seg.prepare_prompt_boxes(source, job["labels"], job["boxes"], job["corrections"], more=job["more"])
    if isinstance(job["target"], LazyTarget):  # a big or lazy image: block by block into a new zarr array
        labels = yield from segment_lazy(seg, prompt, job["target"], target)
    elif job["stack"]:  # every plane, one Labels stack
        labels = yield from seg.segment_stack_iter(job["target"], prompt)
    else:
        labels = yield from seg.segment_iter(job["target"], prompt)
    if job["instances"]:
        yield Progress(0, 0, "numbering the objects")
        labels = instance_labels(labels, job["instances"])
    planes = {"box_planes": job["box_planes"]} if job["box_planes"] else {}
    return labels, prompt, {**seg.provenance(prompt), **planes, "instances": job["instances"], "colour": sentence}


def progress_text(p: Progress) -> str:
    if p.message == "segmenting":
        return f"Segmenting: tile {p.done} of {p.total}"
    return default_progress_text(p)
