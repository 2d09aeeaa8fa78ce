"""Workflow 2 as requests and jobs. :class:`PseudoRequest` holds the annotated images and both stages' parameters;
:func:`pseudo_job` makes the pseudo-labels (stage 1) and returns them with their provenance. :class:`TrainRequest`
holds images with full labels (the pseudo-labels, with the user's fixes) and :func:`train_job` trains the stage-2
network on them, its card saying how. The faces are thin over them: ``fewcell pseudolabel`` runs :func:`pseudo_job`,
writes the labels, then :func:`train_job` on :meth:`PseudoRequest.train_request`; the widget's Generate runs
:func:`pseudo_job` and its Train runs :func:`train_job` on the pseudo-label layers."""
from __future__ import annotations

import dataclasses
from typing import Generator, Sequence

import numpy as np

from ..core.annotation import AnnotatedImage
from ..core.errors import FewcellError
from ..core.options import check_params
from ..core.progress import Progress
from .choice import describe_labeller
from .params import PseudoParams, TrainParams
from .pseudo import PseudoResult, describe_epoch, pseudolabel_iter, validate
from .stage2 import SegModel, check_keep, relabel, train_iter


@dataclasses.dataclass
class TrainRequest:
    """Stage 2: a network trained on images with full labels (one labels array per image, value v = class v)."""

    images: Sequence  #: (H, W[, C]) arrays
    labels: Sequence  #: one (H, W) labels array per image
    params: TrainParams = dataclasses.field(default_factory=TrainParams)
    class_names: dict = dataclasses.field(default_factory=dict)  #: {value: name}, kept in the network's card
    #: per image, stage 1's probability of its label (pixels below ``params.min_confidence`` are left out)
    confidence: Sequence | None = None
    source: dict = dataclasses.field(default_factory=dict)  #: where the labels came from, for the network's card
    #: per image, the pixels whose labels every self-training round keeps (``params.rounds`` > 1): the annotation,
    #: the user's fixes; None keeps none
    keep: Sequence | None = None

    def check(self) -> None:
        check_params(self.params, TrainParams)
        if not len(self.images):
            raise FewcellError("There is no image to train on; generate pseudo-labels for at least one image first.")
        if len(self.labels) != len(self.images):
            raise FewcellError(f"{len(self.images)} images but {len(self.labels)} labels; give one labels array "
                               "per image.")
        for i, (image, labels) in enumerate(zip(self.images, self.labels)):
            if np.shape(labels) != np.shape(image)[:2]:
                raise FewcellError(f"The labels of image {i + 1} are {'×'.join(map(str, np.shape(labels)))} but "
                                   f"the image is {'×'.join(map(str, np.shape(image)[:2]))}; give labels of its "
                                   "shape.")
        check_keep(self.keep, self.labels)


def train_job(request: TrainRequest) -> Generator[Progress, None, SegModel]:
    """Check the request, then train the stage-2 network; returns it with its card (the request's source, the
    parameters, the loss)."""
    request.check()
    return (yield from train_iter(request.images, request.labels, params=request.params,
                                  class_names=request.class_names, card=dict(request.source),
                                  confidence=request.confidence, keep=request.keep))


def network_labels_job(model: SegModel, request: TrainRequest) -> Generator[Progress, None, list[np.ndarray]]:
    """The trained ``model``'s labels of the request's images, its ``keep`` pixels (the annotation) keeping theirs:
    on four image types the network never saw they were 1.0–3.0 Dice better than the pseudo-labels it learnt from
    (docs/benchmarks/partial.md, self-training rounds)."""
    out, n = [], len(request.images)
    for i, (image, labels) in enumerate(zip(request.images, request.labels)):
        yield Progress(i, n, f"labelling image {i + 1} of {n} with the network")
        out.append(relabel(model, image, labels, None if request.keep is None else request.keep[i]))
    yield Progress(n, n, "labelled")
    return out


@dataclasses.dataclass
class PseudoRequest:
    """Stage 1 (and the settings of stage 2, checked before stage 1 starts). Annotation has one meaning: inside a
    box, value v is class v and 0 is background; outside the boxes nothing is known."""

    data: Sequence[AnnotatedImage]  #: the images with their boxes (``annotate(image, labels, boxes)``)
    params: PseudoParams = dataclasses.field(default_factory=PseudoParams)
    train: TrainParams | None = None  #: stage 2's parameters when a network is to be trained on the pseudo-labels
    class_names: dict = dataclasses.field(default_factory=dict)  #: {value: name}
    source: dict = dataclasses.field(default_factory=dict)  #: where the images and boxes came from (provenance)

    def check(self) -> np.ndarray:
        """Every check that can fail before any work starts; returns the class values."""
        check_params(self.params, PseudoParams)
        if self.train is not None:
            check_params(self.train, TrainParams)
        return validate(self.data)

    def train_request(self, result: "PartialResult") -> TrainRequest:
        """Stage 2 on this request's images and ``result``'s pseudo-labels, its card saying how they were made."""
        if self.train is None:
            raise FewcellError("The request names no stage-2 training; give it TrainParams.")
        return TrainRequest([d.image for d in self.data], result.labels, self.train, self.class_names,
                            result.pseudo.confidence, result.provenance, [d.known for d in self.data])


@dataclasses.dataclass
class PartialResult:
    pseudo: PseudoResult  #: the pseudo-labels, classes, fine-tuning history, confidence and labeller
    provenance: dict  #: how they were made (the files' description, the stage-2 network's card)

    @property
    def labels(self) -> list[np.ndarray]:
        return self.pseudo.labels

    def report(self) -> list[str]:
        """One line per fine-tuning epoch, then which network and path labelled the images."""
        return [describe_epoch(h) for h in self.pseudo.history] + [describe_labeller(self.pseudo.labeller)]


def pseudo_job(request: PseudoRequest) -> Generator[Progress, None, PartialResult]:
    """Check the request (stage 2's settings too), then fine-tune, choose the labeller and label every image."""
    request.check()
    result = yield from pseudolabel_iter(request.data, request.params)
    provenance = {"trained_on": "pseudo-labels of napari-fewcell (workflow 2)", **request.source,
                  "stage1": dataclasses.asdict(request.params), "stage1_history": result.history,
                  "stage1_labeller": result.labeller}
    return PartialResult(result, provenance)
