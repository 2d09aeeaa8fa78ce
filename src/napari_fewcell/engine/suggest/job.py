"""Workflow 4's ranking as one request and one job. :class:`SuggestRequest` holds the images (2D planes), the
suggestion parameters and what scores the tiles: a saved model, or a shipped network (adapted to the images by the
pretext task when asked); :func:`suggest_job` checks it, loads the scorer and ranks the tiles. The faces are thin
over it: ``fewcell suggest`` writes the result's rows as JSON; the widget's loop (:class:`~.session.Session`) takes
its first scorer from :func:`first_scorer_iter`, as the job does."""
from __future__ import annotations

import dataclasses
from typing import Generator, Sequence

import numpy as np

from ..core.errors import FewcellError
from ..core.options import check_params
from ..core.progress import Progress
from ..models import open_model
from .params import NO_MODEL, PretextParams, SuggestParams
from .pretext import pretext_iter
from .scorers import Scorer, scorer_for, shipped_network
from .tiles import Suggestion, candidates, suggest_iter


def first_scorer_iter(arrs: Sequence[np.ndarray], network: str | None, pretext: bool, pretext_steps: int,
                      device: str, seed: int = 0) -> Generator[Progress, None, Scorer]:
    """The shipped network ``network`` (by the images' kind when None) that scores before anything is annotated,
    adapted to the images by the pretext task (paper 001 §3.2) when ``pretext``. ``arrs``: (H, W, C) arrays, as
    :func:`~.tiles.candidates` gives them."""
    scorer = shipped_network(network, arrs[0].shape[-1], device)
    if pretext:
        scorer = yield from pretext_iter(scorer, arrs, PretextParams(steps=pretext_steps, seed=seed))
    return scorer


@dataclasses.dataclass
class SuggestRequest:
    """Rank the tiles of ``planes`` by what a model would learn from them (paper 001)."""

    planes: Sequence  #: 2D images (H, W[, C]); every tile of every plane is a candidate
    names: Sequence[str] = ()  #: the planes' names, for the sentences (default "image 1", …)
    params: SuggestParams = dataclasses.field(default_factory=SuggestParams)
    model: str | None = None  #: a saved perceptron (.npz) or stage-2 network (.pt) that scores; None: a shipped one
    network: str | None = None  #: the shipped network that scores without ``model`` (None: by the images' kind)
    pretext: bool = False  #: adapt the shipped network to the images first (pretext task; not with ``model``)
    pretext_steps: int = PretextParams.steps

    def check(self) -> list[np.ndarray]:
        """Every check that can fail before a model loads; returns the planes as (H, W, C) arrays."""
        check_params(self.params, SuggestParams)
        if not len(self.planes):
            raise FewcellError("There is no image to suggest tiles in; open or give at least one image.")
        if self.names and len(self.names) != len(self.planes):
            raise FewcellError(f"The request names {len(self.names)} images but holds {len(self.planes)}; give one "
                               "name per image.")
        if self.pretext and self.model:
            raise FewcellError("The pretext task adapts the shipped network to your images before anything is "
                               "annotated; a fitted model is already adapted, so drop one of the two.")
        PretextParams(steps=self.pretext_steps, seed=self.params.seed).check()
        return candidates(self.planes, self.params.tile, names=self.names or None)[0]


@dataclasses.dataclass
class SuggestResult:
    hits: list[Suggestion]  #: best first
    scored_by: str | None  #: the model file, "shipped:NAME", or None for a score that needs no model
    score: str  #: the score's name

    def rows(self, where: Sequence[tuple[str, int | None]] | None = None) -> list[dict]:
        """The suggestions as JSON rows, best first: rank, image (``where``'s path, else the plane's index), box,
        score, plane (of a stack), the score's name and what scored."""
        return [{"rank": h.rank, "image": where[h.image][0] if where else h.image, "box": list(h.box),
                 "score": round(h.score, 6),
                 **({"plane": where[h.image][1]} if where and where[h.image][1] is not None else {}),
                 "score_name": self.score, "model": self.scored_by} for h in self.hits]


def suggest_job(request: SuggestRequest) -> Generator[Progress, None, SuggestResult]:
    """Check the request, load what scores (none for random and coverage) and rank every tile."""
    arrs = request.check()
    p, scorer, scored_by = request.params, None, None
    if p.score not in NO_MODEL and request.model:
        scorer, scored_by = scorer_for(open_model(request.model, device=p.device)), str(request.model)
    elif p.score not in NO_MODEL:
        scorer = yield from first_scorer_iter(arrs, request.network, request.pretext, request.pretext_steps,
                                              p.device, p.seed)
        scored_by = f"shipped:{scorer.name}"
    hits = yield from suggest_iter(arrs, scorer, p, names=list(request.names) or None)
    return SuggestResult(hits, scored_by, p.score)
