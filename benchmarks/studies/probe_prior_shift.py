#!/usr/bin/env python
"""Is a box's class share the wrong prior for the images it segments? (issue 20; a probe, nothing changed)

Every path's posterior carries the box's class shares as its prior: attention is a kernel density estimate whose
classes weigh as many keys as the box has pixels of them, and the forests are fitted on a class-proportional sample
of the box. A 64×64 box seldom holds its image's shares: on TEM axons the seeded boxes hold 7–92 % axon, the images
about 40 %. This probe takes each path's foreground probability on every scored image (``segment_iter(...,
confidence=True)``; two classes) and re-labels it under another prior:

- ``plain``: the box's shares (what ships);
- ``B = 0.5`` / ``B = 1``: the odds divided by (box share ratio)^B: 1 is a prior of equal shares, the same as
  ``PromptParams.balance`` on attention alone, here on every path;
- ``EM``: the image's own shares estimated by Saerens et al.'s EM (2002) on the path's posteriors, all scored images
  pooled (the classic unsupervised correction for a shift of the prior);
- ``share`` / ``½ share``: each image's share as attention alone labels it with its classes weighed alike (B = 1, a
  prior-free estimate), all the way or half of it in log-odds.

Boxes and images as bench_generalise.py (seeded 64×64 boxes from train images; ``--split val``: other train
images, ``test``: the test split); the default path ``auto`` re-labelled on the path it chose.

    python benchmarks/studies/probe_prior_shift.py --data ../shared/data --out benchmarks/results/prior_shift_val.md \
        FOLD=WEIGHTS [FOLD=WEIGHTS ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import re

import bench_generalise as bg
import numpy as np
from common import (
    BOX,
    Dataset,
    dice_pct,
    finish_report,
    fold_study_parser,
    log,
    report_header,
    seeded_box,
    set_threads,
)

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.training.datasets import split_name

PATHS = ("none", "fuse", "forest", "auto")
PRIORS = ("plain", "B = 0.5", "B = 1", "EM", "share", "½ share")


def reprior(p: np.ndarray, odds: float) -> np.ndarray:
    """Foreground probabilities ``p`` with their odds multiplied by ``odds``."""
    return odds * p / (odds * p + (1 - p) + 1e-12)


def em_prior(p: np.ndarray, source: float, iters: int = 200) -> float:
    """The target's foreground share by EM (Saerens et al. 2002) from posteriors ``p`` made under prior ``source``."""
    target = source
    for _ in range(iters):
        new = float(reprior(p, target / source * (1 - source) / (1 - target)).mean())
        new = min(max(new, 1e-3), 1 - 1e-3)
        if abs(new - target) < 1e-6:
            return new
        target = new
    return target


def relabelled(probs: list[np.ndarray], source: float, refs: list[float]) -> dict[str, list[np.ndarray]]:
    """Each prior's foreground masks of the scored images. ``refs``: each image's foreground share by attention alone
    with its classes weighed alike (a prior-free estimate: the priors "share" and "½ share" move the path's odds to it,
    all the way or half of it in log-odds)."""
    ratio = source / (1 - source)
    pooled = np.concatenate([p.ravel()[::7] for p in probs])
    em = em_prior(pooled, source)
    odds = {"plain": 1.0, "B = 0.5": ratio ** -0.5, "B = 1": 1 / ratio, "EM": em / (1 - em) / ratio}
    out = {k: [reprior(p, o) > 0.5 for p in probs] for k, o in odds.items()}
    to_ref = [np.clip(r, 0.01, 0.99) / (1 - np.clip(r, 0.01, 0.99)) / ratio for r in refs]
    out["share"] = [reprior(p, o) > 0.5 for p, o in zip(probs, to_ref)]
    out["½ share"] = [reprior(p, o ** 0.5) > 0.5 for p, o in zip(probs, to_ref)]
    return out


def fg_probs(seg, prompt, images) -> list[np.ndarray]:
    """The foreground probability of every image (two classes: the winner's probability or its complement)."""
    out = []
    for img in images:
        labels, conf = run(seg.segment_iter(img, prompt, confidence=True))
        c = conf.astype(np.float32)
        out.append(np.where(labels > 0, c, 1 - c))
    return out


def one_fold(data: str, item: str, split: str, n_boxes: int, max_test: int) -> tuple[dict, list[str]]:
    """{(path, prior): mean Dice over boxes} and a line per box (its share, the images' share, auto's path)."""
    fold, _, w = item.partition("=")
    set_name, folder = split_name(fold)
    ds = Dataset(data, set_name, folder=folder or "labels")
    boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(n_boxes)]
    ids = bg.scored_ids(ds, boxes, split, max_test)
    images, truth = [ds.images[i] for i in ids], [np.asarray(ds.labels[i]) > 0 for i in ids]
    model, dice, lines = load_model(w), {}, []
    for b, (src, y, x) in enumerate(boxes):
        share = float(np.clip(np.mean(np.asarray(ds.labels[src])[y : y + BOX, x : x + BOX] > 0), 0.01, 0.99))
        cells, refs = [], None
        for path in PATHS:
            (seg, prompt), _, info = bg.Fewcell(model, w, path, True).prepare(ds, (src, y, x))
            probs = fg_probs(seg, prompt, images)
            if refs is None:  # PATHS[0], attention alone: each image's share with its classes weighed alike
                refs = [float(np.mean(reprior(p, (1 - share) / share) > 0.5)) for p in probs]
            for prior, masks in relabelled(probs, share, refs).items():
                d = float(np.mean([dice_pct(m, t) for m, t in zip(masks, truth)]))
                dice.setdefault((path, prior), []).append(d)
                cells.append(f"{path} {prior} {d:.1f}")
            chose = info.get("path") if path == "auto" else None
        lines.append(f"- {fold}, box {b} ({src} at {y}, {x}): foreground {share:.0%} of the box, "
                     f"{np.mean([t.mean() for t in truth]):.0%} of the images; auto chose {chose}; " + ", ".join(cells))
        log(lines[-1])
    return {k: float(np.mean(v)) for k, v in dice.items()}, lines


#: (attention alone's prior, the forests' prior), auto's choice as it is. forest_balance leaves the choice alone, so
#: its rows are what the engine gives; balance > 0 also moves attention alone's self-check, so those rows are not
MIXES = {"plain / plain (the default)": ("plain", "plain"),
         "plain / B = 0.5 (forest_balance 0.5)": ("plain", "B = 0.5"),
         "B = 0.5 / B = 0.5": ("B = 0.5", "B = 0.5"), "B = 1 / B = 0.5": ("B = 1", "B = 0.5"),
         "plain / share": ("plain", "share"), "plain / ½ share": ("plain", "½ share")}


def replay(report: str) -> list[str]:
    """A table of :data:`MIXES` from a report's per-box lines: each box's Dice on the path auto chose, attention
    alone under one prior and the forests' paths under another (what PromptParams.balance and forest_balance do)."""
    folds: dict[str, list[tuple[str, dict]]] = {}
    for line in Path(report).read_text().splitlines():
        m = re.match(r"- (\S+), box \d+ .*auto chose (\w+); (.*)", line)
        if m:
            cells = dict(part.rsplit(" ", 1) for part in m.group(3).split(", "))
            folds.setdefault(m.group(1), []).append((m.group(2), {k: float(v) for k, v in cells.items()}))
    out = [f"Replayed from `{report}`: auto's choice as it is, attention alone (none) under one prior and the "
           "forests' paths under another; Dice % mean over boxes.", "",
           "| prior: attention alone / the forests | " + " | ".join(folds) + " | mean |",
           "|" + "---|" * (len(folds) + 2)]
    for name, (alone, forests) in MIXES.items():
        per = [np.mean([v[f"{c} {alone if c == 'none' else forests}"] for c, v in boxes]) for boxes in folds.values()]
        out.append(f"| {name} | " + " | ".join(f"{d:.2f}" for d in per) + f" | **{np.mean(per):.2f}** |")
    return out


def main() -> None:
    ap = fold_study_parser(__doc__, boxes=4)
    ap.add_argument("--replay", metavar="REPORT", help="no run: the options' table from this report's per-box lines")
    args = ap.parse_args()
    if args.replay:
        return finish_report(report_header("What the prompt options would give, replayed", False)
                             + ["", *replay(args.replay)], args.out)
    set_threads(2)
    rows, per_box = [], []
    for item in args.folds:
        dice, lines = one_fold(args.data, item, args.split, args.boxes, args.max_test)
        rows.append((item.partition("=")[0], dice))
        per_box += lines
    cols = [(p, q) for p in PATHS for q in PRIORS]
    scored = "validation images" if args.split == "val" else "test images"
    rep = report_header(f"Each path's posterior under another prior ({scored})", False) + [
        "", "Dice % (mean over boxes); each path under the box's prior (plain), the odds divided by the box's "
        "share ratio to the power B, the images' share by EM, or each image's share by balanced attention alone "
        "(share; ½ share: half of it in log-odds).", "",
        "| fold | " + " | ".join(f"{p} {q}" for p, q in cols) + " |", "|" + "---|" * (len(cols) + 1)]
    rep += [f"| {f} | " + " | ".join(f"{d[c]:.2f}" for c in cols) + " |" for f, d in rows]
    rep += ["| **mean** | " + " | ".join(f"**{np.mean([d[c] for _, d in rows]):.2f}**" for c in cols) + " |",
            "", "Per box:", "", *per_box]
    finish_report(rep, args.out)


if __name__ == "__main__":
    main()
