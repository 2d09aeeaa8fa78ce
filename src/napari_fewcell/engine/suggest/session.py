"""The suggest → annotate → accept → refit loop of workflow 4, without any GUI.

A :class:`Session` holds the images being worked on (2D planes), the tiles accepted so far with
their labels (each one an annotated box: inside it, value v is class v and 0 is background), the
tiles skipped, and the current model — a perceptron (workflow 3) or a prompt segmenter
(workflow 1, the accepted tiles together as its prompt). Before anything is accepted, tiles are
scored by a shipped network (optionally adapted to the images by the pretext task).

    s = Session(planes, names, SessionParams(model="perceptron"))
    hits = run(s.suggest_iter())                     # best first
    s.accept(hits[0].image, hits[0].box, labels)     # labels: the plane's labels (read inside the box)
    preds = run(s.refit_iter())                      # refit, then one prediction per plane
"""
from __future__ import annotations

import dataclasses
from typing import Generator, Sequence

import numpy as np

from ..core.annotation import annotate, as_list, require_two_classes
from ..core.errors import FewcellError
from ..core.geometry import Box, check_box
from ..core.options import check_params
from ..core.progress import Progress, run
from ..fewshot.features import Extractors
from ..fewshot.job import fit_iter
from ..fewshot.params import PerceptronParams
from ..prompt.params import PromptParams
from ..prompt.segmenter import Segmenter
from .job import first_scorer_iter
from .params import NO_MODEL, SessionParams
from .scorers import PerceptronScorer, PromptScorer, Scorer
from .scores import versions
from .tiles import Suggestion, candidates, image_index, scoring_scale, scoring_tiles, suggest_iter


class Session:
    def __init__(self, planes: Sequence[np.ndarray], names: Sequence[str], params: SessionParams | None = None):
        self.params = params or SessionParams()
        check_params(self.params, SessionParams)
        planes, names = as_list(planes, "images"), as_list(names, "image names")
        if len(names) != len(planes):
            raise FewcellError(f"{len(planes)} images but {len(names)} names; give one name per image.")
        self.arrs, _ = candidates(planes, self.params.suggest.tile, names=names)
        self.names = names
        self.accepted: dict[tuple[int, Box], np.ndarray] = {}  # (plane, box) → labels of the box (h, w)
        self.skipped: dict[int, list[Box]] = {}
        self.model = None  # a Perceptron, or (Segmenter, Prompt)
        self._network: Scorer | None = None
        self._fx = None
        self._seg = None

    # ---- scoring ---------------------------------------------------------------------------------
    def _first_scorer(self) -> Generator[Progress, None, Scorer]:
        if self._network is None:
            p = self.params
            self._network = yield from first_scorer_iter(self.arrs, p.network, p.pretext, p.pretext_steps, p.device)
        return self._network

    def scorer_iter(self) -> Generator[Progress, None, Scorer]:
        """The model's scorer once one is fitted, else (or with ``score_with="network"``) the (adapted)
        shipped network."""
        if self.model is None or self.params.score_with == "network":
            return (yield from self._first_scorer())
        if isinstance(self.model, tuple):
            return PromptScorer(*self.model)
        return PerceptronScorer(self.model)

    def exclude(self) -> dict[int, list[Box]]:
        out = {i: list(b) for i, b in self.skipped.items()}
        for i, box in self.accepted:
            out.setdefault(i, []).append(box)
        return out

    def tiles_left(self) -> int:
        """How many tiles overlap no accepted or skipped tile (the ones that can still be suggested)."""
        return len(candidates(self.arrs, self.params.suggest.tile, self.exclude())[1])

    def suggest_iter(self) -> Generator[Progress, None, list[Suggestion]]:
        """Score every tile not yet accepted or skipped; the best ``top`` first."""
        scorer = None if self.params.suggest.score in NO_MODEL else (yield from self.scorer_iter())
        p = self.params.suggest
        top = dataclasses.replace(p, top=max(1, min(p.top, self.tiles_left())))  # near the end, fewer are left
        return (yield from suggest_iter(self.arrs, scorer, top, self.exclude(), self.names))

    def prepare_iter(self) -> Generator[Progress, None, int]:
        """Compute ahead what the next rescoring needs, e.g. while the user paints a tile: the perceptron's features of
        every version of every tile left that the score reads, kept up to ``SessionParams.tile_memory`` MiB (a
        rescore after a refit then costs one projection per tile). Nothing to do for the prompt model, for tiles
        scored by the first network or scores that need no model. Returns how many tile versions are kept."""
        p = self.params
        if p.model != "perceptron" or p.score_with != "model" or p.suggest.score in NO_MODEL or not p.tile_memory:
            return 0
        fx = self._extractors()
        _, cands = candidates(self.arrs, p.suggest.tile, self.exclude())
        norm, scale, what = {}, scoring_scale(p.suggest, PerceptronScorer), "features for the next rounds"
        yield Progress(0, len(cands), what)
        for s in range(0, len(cands), p.suggest.batch):
            x = scoring_tiles(self.arrs, cands[s : s + p.suggest.batch], norm, scale)
            for v in versions(x, p.suggest):  # a step per version: a quit (the widget's Accept) waits for less
                if fx.tile_room < v.shape[-2] * v.shape[-1] * 2 * fx.n_features:
                    return fx.tiles_kept  # full: the rest is computed when scored
                fx.tile_features(v.numpy(), keep_only=True)
                yield Progress(s, len(cands), what)
            yield Progress(min(len(cands), s + p.suggest.batch), len(cands), what)
        return fx.tiles_kept

    @property
    def tiles_prepared(self) -> int:
        """How many tile versions' features are kept for the next rescore (:meth:`prepare_iter`)."""
        return 0 if self._fx is None else self._fx.tiles_kept

    def _extractors(self) -> Extractors:
        if self._fx is None:
            self._fx = Extractors(device=self.params.device)  # its feature cache makes refits fast
            self._fx.keep_tiles(self.params.tile_memory << 20)
        return self._fx

    # ---- annotating --------------------------------------------------------------------------
    def accept(self, image: int, box: Box, labels: np.ndarray) -> None:
        """Record the tile ``box`` of plane ``image`` as annotated by ``labels`` (the plane's labels,
        read inside the box; 0 = background). Accepting a tile again replaces its labels."""
        y, x, h, w = box = self.tile_of(image, box)
        lab = np.asarray(labels)
        if lab.shape != self.arrs[image].shape[:2]:
            raise FewcellError(f"The labels are {'×'.join(map(str, lab.shape))} but {self.names[image]} is "
                               f"{self.arrs[image].shape[0]}×{self.arrs[image].shape[1]}; paint in a labels layer "
                               "of the image's shape.")
        self.accepted[(image, box)] = lab[y : y + h, x : x + w].copy()

    def skip(self, image: int, box: Box) -> None:
        self.skipped.setdefault(image, []).append(self.tile_of(image, box))

    def tile_of(self, image: int, box) -> Box:
        """``box`` checked to lie in plane ``image`` (an index of the session's planes); one sentence otherwise."""
        image = image_index(image, len(self.arrs), "in this session")
        return check_box(box, self.arrs[image].shape[:2], self.names[image])

    def _annotated(self):
        by_plane: dict[int, list] = {}
        for (i, box), lab in self.accepted.items():
            by_plane.setdefault(i, []).append((box, lab))
        out = []
        for i, items in by_plane.items():
            full = np.zeros(self.arrs[i].shape[:2], np.int64)
            for (y, x, h, w), lab in items:
                full[y : y + h, x : x + w] = lab
            out.append((i, full, [b for b, _ in items]))
        values = np.concatenate([lab.ravel() for lab in self.accepted.values()])
        require_two_classes(values, "accepted tiles hold",
                            "paint at least one structure and some background in a tile, then press Accept again")
        return out

    def refit_iter(self, predict: Sequence[int] | None = None) -> Generator[Progress, None, dict[int, np.ndarray]]:
        """Refit the model on every accepted tile; returns {plane: labels} for ``predict`` (default: all planes)."""
        if not self.accepted:
            raise FewcellError("No tile is accepted yet; press Next, paint the tile, then Accept.")
        annotated = self._annotated()
        if self.params.model == "perceptron":
            # accepted tiles never overlap: suggestions exclude every tile touching an accepted one
            data = [annotate(self.arrs[i], full, boxes, name=self.names[i]) for i, full, boxes in annotated]
            self.model = yield from fit_iter(data, PerceptronParams(device=self.params.device),
                                         extractors=self._extractors())
        else:
            if self._seg is None:
                self._seg = Segmenter(PromptParams(device=self.params.device))
            yield Progress(0, len(self.accepted), "embedding the accepted tiles")
            # the accepted tiles together are one prompt (a single tile may hold one class)
            self.model = (self._seg, self._seg.prompt_from_boxes(
                [(self.arrs[i], full, boxes) for i, full, boxes in annotated], "accepted tiles hold"))
        targets = range(len(self.arrs)) if predict is None else predict
        out = {}
        for n, i in enumerate(targets):
            out[i] = run(self.predict_iter(i))
            yield Progress(n + 1, len(targets), f"predicting {self.names[i]}")
        return out

    def predict_iter(self, i: int) -> Generator[Progress, None, np.ndarray]:
        if self.model is None:
            raise FewcellError("There is no model yet; accept an annotated tile first.")
        if isinstance(self.model, tuple):
            seg, prompt = self.model
            return (yield from seg.segment_iter(self.arrs[i], prompt))
        return (yield from self.model.predict_iter(self.arrs[i], self.names[i]))

