"""Workflow 3 as one request and one job. :class:`FitRequest` holds the support images (each an annotated image:
inside a box, or the whole image, value v is class v and 0 is background), the fitting parameters and the class
names; :func:`fit_job` checks it, computes the support pixels' features and fits the perceptron (logistic regression,
then BFGS on the Dice loss), which holds its provenance in ``meta``. The faces are thin over it: ``fewcell fit`` and
the widget's Fit make a request and run the job; :class:`~..suggest.session.Session` refits with it."""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Generator, Sequence

import numpy as np

from ..core import modelfile
from ..core.annotation import (
    UNIFORM_HINT,
    AnnotatedImage,
    as_list,
    require_two_classes,
    uniform_with_classes,
)
from ..core.errors import FewcellError
from ..core.options import check_params
from ..core.progress import Progress, run
from .features import EXTRAS, Extractors
from .params import PerceptronParams
from .perceptron import Perceptron, fit_one, kind_of
from .support_set import sample_pixels, support, support_pixels, support_range

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FitRequest:
    """A perceptron fitted on support images (``support(image, labels[, boxes])`` each)."""

    support: Sequence[AnnotatedImage]
    params: PerceptronParams = dataclasses.field(default_factory=PerceptronParams)
    class_names: dict = dataclasses.field(default_factory=dict)  #: {value: name}, kept in the model

    def check(self) -> np.ndarray:
        """Every check that can fail before any work starts; returns the class values of the support."""
        check_params(self.params, PerceptronParams)
        data = self.support
        if not data:
            raise FewcellError("No support image was given; add at least one image with its labels.")
        kinds = [kind_of(d.image) for d in data]
        for d, k in zip(data, kinds):
            if k != kinds[0]:
                raise FewcellError(
                    f"{d.name} is {k} but {data[0].name} is {kinds[0]}: the support images must all have the same "
                    "number of channels; convert them to one kind first."
                )
            if not d.known.any():
                raise FewcellError(f"{d.name} has no annotated pixel; give its labels (or a box inside it).")
            for y, x, h, w in d.boxes or [(0, 0, *d.shape)]:
                if uniform_with_classes(d.image[y : y + h, x : x + w], d.labels[y : y + h, x : x + w]):
                    what = f"{'an annotated box of ' if d.boxes else ''}{d.name}"
                    raise FewcellError(f"{what[0].upper()}{what[1:]} is uniform (every pixel has the same value) but "
                                       f"labelled with two classes, {UNIFORM_HINT}.")
        values = np.unique(np.concatenate([d.labels[d.known] for d in data]))
        require_two_classes(values, "support labels hold", "label at least one structure and some background")
        return values


def fit_job(request: FitRequest, extractors: Extractors | None = None) -> Generator[Progress, None, Perceptron]:
    """Check the request, then fit; returns the perceptron (its ``meta``: the parameters, the support, the fit log
    and times). ``extractors``: ones already loaded, whose feature cache makes a refit compute only new images."""
    values = request.check()
    data, p = request.support, request.params
    t0 = time.perf_counter()
    fx = extractors or Extractors(p.extractors, device=p.device, precision=p.precision)
    rng = support_range(data) if p.intensity == "support" else None
    chosen = sample_pixels(data, p.max_pixels, np.random.default_rng(p.seed))
    xs, ys = [], []
    steps = len(data) + 1
    for i, (d, rows) in enumerate(zip(data, chosen)):
        yield Progress(i, steps, f"features of {d.name}")
        for x, y in support_pixels(fx, d, rows, rng):
            xs.append(x)
            ys.append(y)
    t_feat = time.perf_counter() - t0
    X, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)
    std[std < 1e-6] = 1.0  # constant features (e.g. a map that is 0 everywhere) stay 0 after centring
    X = ((X - mean) / std).astype(np.float32)
    fg = values[values != 0] if 0 in values else values
    yield Progress(len(data), steps, "logistic regression + BFGS")
    thetas, records = [], []
    for v in fg:
        theta, rec = fit_one(X, (y == v).astype(np.float64), p)
        thetas.append(theta)
        records.append({"class": int(v), **rec})
    yield Progress(steps, steps, "fitted")
    thetas = np.array(thetas)
    meta = {
        **modelfile.PERCEPTRON.header, "kind": "perceptron over MSD feature maps (paper 002)",
        "extractors": fx.spec, "extras": EXTRAS, "feature_precision": fx.precision,
        "n_features": fx.n_features, "channels": kind_of(data[0].image), "multiclass": "one-vs-rest",
        "params": dataclasses.asdict(p), "support": [{"name": d.name, "shape": list(d.shape),
                                                       "annotated_pixels": int(d.known.sum())} for d in data],
        "pixels_used": len(y), "fit": records, "features_seconds": round(t_feat, 3),
        "intensity_range": None if rng is None else [[float(v) for v in part] for part in rng],
        "fit_seconds": round(time.perf_counter() - t0 - t_feat, 3),
        "class_names": {str(k): str(v) for k, v in request.class_names.items()},
    }
    for r in records:
        if r.get("note"):
            log.info("class %s: %s", r["class"], r["note"])
    return Perceptron(thetas[:, 1:], thetas[:, 0], mean, std, values, fg, meta, fx)


def fit_report(model: Perceptron) -> list[str]:
    """One line per class (the logistic and BFGS losses, which was kept), then the times."""
    meta = model.meta
    lines = [f"class {rec['class']}: logistic Dice loss {rec['logistic_loss']:.4f}"
             + (f", BFGS {rec['bfgs_loss']:.4f} in {rec['bfgs_iterations']} iterations" if "bfgs_loss" in rec else "")
             + f"; kept {rec['kept']}" + (f" — {rec['note']}" if rec.get("note") else "") for rec in meta["fit"]]
    return lines + [f"features {meta['features_seconds']:.2f} s, fit {meta['fit_seconds']:.2f} s on "
                    f"{meta['pixels_used']} support pixels"]


def fit_iter(data: Sequence[AnnotatedImage], params: PerceptronParams | None = None,
             extractors: Extractors | None = None, class_names: dict | None = None
             ) -> Generator[Progress, None, Perceptron]:
    """:func:`fit_job` on ``FitRequest(data, params, class_names)``."""
    request = FitRequest(data, params or PerceptronParams(), dict(class_names or {}))
    return (yield from fit_job(request, extractors))


def fit(images: Sequence, labels: Sequence, boxes: Sequence | None = None,
        params: PerceptronParams | None = None) -> Perceptron:
    """Fit on ``images`` with ``labels`` (one per image); ``boxes`` (per image, or None) limit what is known."""
    images, labels = as_list(images, "support images"), as_list(labels, "support labels")
    if len(images) != len(labels):
        raise FewcellError(f"{len(images)} support images but {len(labels)} labels; give one labels per image.")
    boxes = (as_list(boxes, "boxes") if boxes is not None else []) or [()] * len(images)
    if len(boxes) != len(images):
        raise FewcellError(f"{len(images)} support images but {len(boxes)} lists of boxes; give one list per image "
                           "(an empty one where the image is annotated whole).")
    data = [support(im, lab, bx, name=f"support image {i + 1}")
            for i, (im, lab, bx) in enumerate(zip(images, labels, boxes))]
    return run(fit_iter(data, params))
