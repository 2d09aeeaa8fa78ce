"""Workflow 4 — what to annotate next: tiles ranked by how much a model would learn from them (paper 001).

Every image is cut into square tiles; each tile is scored (:mod:`.scores`) by the current model
(:mod:`.scorers`); the highest scores are the suggestions.

Tiles are scored at ``1/scale`` resolution (area-averaged; by default the model's own, ``Scorer.scale``: 1/2, a
perceptron 1/3): consistency costs four forward passes per tile, and at full resolution the shipped network needs
about 10 s for 100 tiles of 256² on two CPU cores, at half resolution about 2 s (docs/benchmarks/).
Image intensities are normalised once per image, so an augmented tile reaches the model as it is
(a per-tile stretch would undo auto-contrast and brightness).

    hits = run(suggest_iter(images, scorer_for(model), SuggestParams(tile=256, top=5)))
    hits[0].box    # (y, x, h, w) of the best tile of images[hits[0].image]
"""
from __future__ import annotations

from typing import Generator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.annotation import as_list
from ..core.errors import FewcellError
from ..core.geometry import Box, box_values, overlaps, tile_boxes
from ..core.image import as_image2d, intensity_range, normalize
from ..core.progress import Progress
from . import coverage
from .params import NO_MODEL, SuggestParams
from .scorers import Scorer
from .scores import score_batch


class Suggestion(NamedTuple):
    rank: int  #: 1 = best
    image: int  #: index into the images given
    box: Box  #: (y, x, h, w) in that image's pixels
    score: float


def candidates(images: Sequence, tile: int, exclude: dict | None = None, names: Sequence[str] | None = None):
    """(arrays, [(image index, box)]) of the tiles that may be suggested; checks the images."""
    if images is None or not len(images):
        raise FewcellError("No image was given; give at least one image to suggest tiles of.")
    arrs = []
    for i, img in enumerate(images):
        name = names[i] if names else f"image {i + 1}"
        arr = as_image2d(img, name)
        if tile > min(arr.shape[:2]):
            raise FewcellError(f"The tile size {tile} is larger than {name} ({arr.shape[0]}×{arr.shape[1]}); "
                               f"choose a tile of at most {min(arr.shape[:2])} pixels.")
        arrs.append(arr)
    kinds = {a.shape[-1] for a in arrs}
    if len(kinds) > 1:
        raise FewcellError("The images mix gray and colour (different channel counts); suggest tiles for images "
                           "of one kind at a time.")
    exclude = exclude or {}
    cands = [(i, b) for i, a in enumerate(arrs) for b in tile_boxes(a.shape[:2], tile)
             if not any(overlaps(b, e) for e in exclude.get(i, ()))]
    return arrs, cands


def checked_exclude(exclude, n: int) -> dict:
    """``exclude`` ({image index: [(y, x, h, w), …]}) checked and as whole numbers; one sentence otherwise."""
    if exclude is None:
        return {}
    if not isinstance(exclude, dict):
        raise FewcellError("exclude maps an image index to a list of (y, x, h, w) boxes, e.g. {0: [(0, 0, 256, 256)]}, "
                           f"not {type(exclude).__name__}.")
    return {image_index(i, n, "in exclude"): [box_values(b) for b in as_list(boxes, "excluded boxes")]
            for i, boxes in exclude.items()}


def image_index(i, n: int, where: str) -> int:
    """``i`` as the index of one of ``n`` images; one sentence (saying ``where`` it was given) otherwise."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise FewcellError(f"There is no image {i!r} {where}; the images are numbered 0 to {n - 1}.")
    return int(i)


def suggest_iter(images: Sequence, scorer: Scorer | None, params: SuggestParams | None = None,
                 exclude: dict | None = None, names: Sequence[str] | None = None
                 ) -> Generator[Progress, None, list[Suggestion]]:
    """Score every tile of ``images`` (2D gray or RGB arrays) and return the ``top`` best, best first.

    ``exclude`` maps an image index to boxes already annotated (or skipped): tiles overlapping them
    are not suggested. ``scorer`` None is allowed for the scores that need no model (random, coverage).
    """
    p = params or SuggestParams()
    p.check()
    if scorer is None and p.score not in NO_MODEL:
        raise FewcellError(f"The {p.score} score needs a model; fit one (or use the shipped network) first.")
    exclude = checked_exclude(exclude, 0 if images is None else len(images))
    arrs, cands = candidates(images, p.tile, exclude, names)
    if scorer is not None and hasattr(scorer, "check_images"):  # a perceptron scores images of its own kind only
        scorer.check_images(arrs, names)
    if not cands:
        raise FewcellError("Every tile is already annotated or skipped; there is nothing left to suggest.")
    if p.top > len(cands):
        raise FewcellError(f"Asked for the top {p.top} tiles but there are only {len(cands)} tiles to choose "
                           f"from; ask for at most {len(cands)} (or use smaller tiles).")
    scale = scoring_scale(p, scorer)
    if p.score == "coverage":
        return (yield from coverage_iter(arrs, cands, exclude or {}, p, scale))
    score = Scoring(scorer, arrs, cands, p, scale)
    novel = None
    if p.diverse and p.score not in NO_MODEL and any(exclude.values() if exclude else ()):
        novel = yield from novelty(arrs, cands, exclude, p, scale, score.norm)
        # the novel kinds come first: when they hold enough tiles that overlap no better one, the others' scores
        # cannot change the suggestions and are not computed (the loop's rescoring, a third less work or more)
        yield from score.tiles(np.flatnonzero(novel))
        picked = apart(cands, ranked(score.values, novel), p.top)
        if len(picked) == p.top:
            return suggestions(cands, picked, score.values)
    yield from score.tiles(np.flatnonzero(np.isnan(score.values)))
    order = ranked(score.values, novel)
    picked = apart(cands, order, p.top)
    # only if too few tiles overlap no better one are overlapping ones taken, best first
    picked += [int(j) for j in order if int(j) not in picked][: p.top - len(picked)]
    return suggestions(cands, picked, score.values)


def scoring_scale(p: SuggestParams, scorer: Scorer | None = None) -> int:
    """The factor tiles are shrunk by before scoring: ``p.scale``, or the scorer's own when it is None (the class's
    for ``scorer`` a Scorer class; the default :attr:`Scorer.scale` without a model), but never below 16 px a side."""
    scale = p.scale if p.scale is not None else (scorer or Scorer).scale
    return max(1, min(scale, p.tile // 16))


class Scoring:
    """The candidates' scores, computed in batches for the indices asked (the others stay NaN)."""

    def __init__(self, scorer: Scorer | None, arrs, cands, p: SuggestParams, scale: int):
        self.scorer, self.arrs, self.cands, self.p, self.scale = scorer, arrs, cands, p, scale
        self.device = scorer.device if scorer is not None else torch.device("cpu")
        self.gen = torch.Generator().manual_seed(p.seed)
        self.norm: dict = {}
        self.values = np.full(len(cands), np.nan)

    def tiles(self, idx: np.ndarray) -> Generator[Progress, None, None]:
        p, what = self.p, f"scoring tiles ({self.p.score})"
        yield Progress(0, len(idx), what)
        for s in range(0, len(idx), p.batch):
            part = idx[s : s + p.batch]
            x = scoring_tiles(self.arrs, [self.cands[j] for j in part], self.norm, self.scale).to(self.device)
            self.values[part] = score_batch(self.scorer, x, p, self.gen)
            yield Progress(s + len(part), len(idx), what)


def ranked(values: np.ndarray, novel: np.ndarray | None) -> np.ndarray:
    """Indices of the scored candidates, best first (novel kinds first when ``novel`` is given)."""
    done = np.flatnonzero(~np.isnan(values))
    order = done[np.argsort(-values[done], kind="stable")]
    return order if novel is None else order[np.argsort(~novel[order], kind="stable")]


def apart(cands, order, top: int) -> list[int]:
    """Up to ``top`` of ``order``, best first, passing over a tile that overlaps a better one of the same image (edge
    tiles overlap their neighbours)."""
    picked: list[int] = []
    for j in order:
        if not any(cands[j][0] == cands[k][0] and overlaps(cands[j][1], cands[k][1]) for k in picked):
            picked.append(int(j))
            if len(picked) == top:
                break
    return picked


def suggestions(cands, picked, values) -> list[Suggestion]:
    return [Suggestion(r + 1, cands[j][0], tuple(int(v) for v in cands[j][1]), float(values[j]))
            for r, j in enumerate(picked)]


def scoring_tiles(arrs, boxes, norm: dict, scale: int) -> torch.Tensor:
    """The (image index, box) tiles normalised, (N, 3, h, w), at the scoring resolution (area-averaged by
    ``scale``). One intensity range per image, kept in ``norm``, so that tiles are comparable."""
    tiles = []
    for i, (y, x, h, w) in boxes:
        if i not in norm:
            norm[i] = intensity_range(arrs[i])
        tiles.append(normalize(arrs[i][y : y + h, x : x + w], norm[i]))
    t = torch.from_numpy(np.stack(tiles))
    return F.avg_pool2d(t, scale) if scale > 1 else t


def novelty(arrs, cands, exclude: dict, p: SuggestParams, scale: int,
            norm: dict | None = None) -> Generator[Progress, None, np.ndarray]:
    """Per candidate, whether its kind of tile (:func:`coverage.novel_first`) holds no annotated or skipped tile."""
    desc, covered = yield from describe(arrs, cands, exclude, p, scale, norm)
    return np.ones(len(cands), bool) if covered is None else coverage.novel_first(desc, covered, p.top, p.seed)


def describe(arrs, cands, exclude: dict, p: SuggestParams, scale: int,
             norm: dict | None = None) -> Generator[Progress, None, tuple]:
    """Coverage descriptors of the candidates and of the annotated (or skipped) boxes (None if there are none);
    ``norm``: the images' intensity ranges, shared with the scoring (filled here when missing)."""
    norm, desc = {} if norm is None else norm, []
    for s in range(0, len(cands), p.batch):
        desc.append(coverage.descriptors(scoring_tiles(arrs, cands[s : s + p.batch], norm, scale)))
        yield Progress(s + len(desc[-1]), len(cands), "describing tiles (coverage)")
    done = [(i, b) for i, bs in exclude.items() for b in bs if i < len(arrs)]  # annotated boxes: any size
    covered = np.vstack([coverage.descriptors(scoring_tiles(arrs, [d], norm, scale)) for d in done]) if done else None
    return np.vstack(desc), covered


def coverage_iter(arrs, cands, exclude: dict, p: SuggestParams, scale: int) -> Generator[Progress, None, list]:
    """The coverage score's suggestions (:mod:`.coverage`): one tile per kind of texture, the commonest first."""
    desc, covered = yield from describe(arrs, cands, exclude, p, scale)
    picked, scores = coverage.pick(desc, p.top, covered, p.seed)
    return [Suggestion(r + 1, cands[j][0], tuple(int(v) for v in cands[j][1]), s)
            for r, (j, s) in enumerate(zip(picked, scores))]
