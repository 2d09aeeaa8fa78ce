#!/usr/bin/env python
"""Coverage of the kinds of *pixel* instead of the kinds of tile (issue 21, item 3: suggestions that beat random).

The engine's coverage score (engine/suggest/coverage.py) describes each tile by the mean and spread of its filters,
groups the tiles by k-means and suggests the tile nearest each group's centre: a typical tile of each kind. A typical
tile of a sparse structure's images is mostly background, and the model refitted on it sees few pixels of the
structure. This variant (``--variant kinds``) groups the *pixels* of all tiles into ``--kinds`` kinds (k-means on the
same filters, standardised), gives every tile the share of its pixels of each kind, and picks tiles greedily so that
the picked (and already annotated) tiles together hold at least ``--quota`` of a tile's worth of every kind: a
weighted set cover (each kind weighed by the square root of its share of all pixels, or by the share with
``--weigh share``), which asks for the rarer
kinds of pixel — edges, membranes, the insides of sparse objects — as well as the common ones. Tiles already
annotated count as picked; a tile overlapping a picked one is passed over. A suggestion's score is what it adds.

Every other argument is bench_suggest.py's (``--scores coverage``; the patched score replaces coverage):

    python benchmarks/studies/study_suggest_kinds.py --variant kinds --data ../shared/data --no-timing --no-random \
        --split val --sets ... --scores coverage --protocols loop --seed 0 --out results/suggest_kinds_val.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_suggest and common.py

import numpy as np

from napari_fewcell.engine.core.geometry import overlaps
from napari_fewcell.engine.core.progress import Progress
from napari_fewcell.engine.prompt.filters import luminance_features
from napari_fewcell.engine.suggest import coverage, tiles

FIT_PIXELS = 20000  #: pixels drawn from all tiles for the k-means of the kinds
OPTS = {"kinds": 16, "quota": 0.1, "weigh": "sqrt"}


def pixel_features(arrs, boxes, norm, scale, batch: int):
    out = []
    for s in range(0, len(boxes), batch):
        x = tiles.scoring_tiles(arrs, boxes[s : s + batch], norm, scale)
        for t in x.numpy():
            f = luminance_features(t, coverage.SIGMA_MAX)
            out.append(f.reshape(-1, f.shape[-1]))
    return out


def histograms(feats: list[np.ndarray], covered: list[np.ndarray], k: int, seed: int):
    """Per tile (and per annotated box), the share of its pixels of each of ``k`` kinds; the kinds' shares of all."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    allf = feats + covered
    per = max(16, FIT_PIXELS // len(allf))
    sample = np.vstack([f[rng.choice(len(f), min(per, len(f)), replace=False)] for f in allf])
    mu, sd = sample.mean(0), sample.std(0) + 1e-6
    km = KMeans(n_clusters=k, n_init=2, random_state=seed).fit((sample - mu) / sd)

    def hist(f):
        return np.bincount(km.predict((f - mu) / sd), minlength=k) / len(f)

    h = np.stack([hist(f) for f in feats])
    hc = np.stack([hist(f) for f in covered]) if covered else np.zeros((0, k))
    share = np.concatenate([h, hc]).mean(0)
    return h, hc, share


def greedy(h, hc, share, top: int, quota: float, clash) -> tuple[list[int], list[float]]:
    """Indices of ``top`` tiles, each adding most to the weighted cover of the kinds, and what each added."""
    w = np.sqrt(share) if OPTS["weigh"] == "sqrt" else share
    w = w / w.sum()
    have = hc.sum(0)

    def cover(c):
        return (w * np.minimum(1.0, c / quota)).sum(-1)

    picked, gains = [], []
    free = np.ones(len(h), bool)
    for _ in range(top):
        gain = cover(have + h) - cover(have)
        gain[~free] = -np.inf
        j = int(np.argmax(gain))
        if not np.isfinite(gain[j]):
            break
        picked.append(j)
        gains.append(float(gain[j]))
        have = have + h[j]
        free &= ~np.array([clash(j, m) for m in range(len(h))])
    return picked, gains


def kinds_iter(arrs, cands, exclude: dict, p, scale: int):
    """Replaces tiles.coverage_iter: the pixel-kind cover's suggestions."""
    norm: dict = {}
    yield Progress(0, len(cands), "describing tiles (pixel kinds)")
    feats = pixel_features(arrs, cands, norm, scale, p.batch)
    done = [(i, b) for i, bs in exclude.items() for b in bs if i < len(arrs)]
    covered = pixel_features(arrs, done, norm, scale, p.batch) if done else []
    yield Progress(len(cands), len(cands), "describing tiles (pixel kinds)")
    h, hc, share = histograms(feats, covered, OPTS["kinds"], p.seed)

    def clash(j, m):
        return cands[j][0] == cands[m][0] and overlaps(cands[j][1], cands[m][1])

    picked, gains = greedy(h, hc, share, p.top, OPTS["quota"], clash)
    return [tiles.Suggestion(r + 1, cands[j][0], tuple(int(v) for v in cands[j][1]), g)
            for r, (j, g) in enumerate(zip(picked, gains))]


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--variant", choices=("tiles", "kinds"), default="kinds")
    ap.add_argument("--kinds", type=int, default=OPTS["kinds"])
    ap.add_argument("--quota", type=float, default=OPTS["quota"])
    ap.add_argument("--weigh", choices=("sqrt", "share"), default=OPTS["weigh"],
                    help="each kind's weight in the cover: the square root of its share of all pixels, or the share")
    args, rest = ap.parse_known_args()
    if args.variant == "kinds":
        OPTS.update(kinds=args.kinds, quota=args.quota, weigh=args.weigh)
        tiles.coverage_iter = kinds_iter
    import shlex

    import bench_suggest
    import common

    whole = shlex.join([Path(sys.executable).name, *sys.argv])  # the report's command: this study's, all options
    common.command_line = lambda: whole
    sys.argv = [sys.argv[0], *rest]
    bench_suggest.main()


if __name__ == "__main__":
    main()
