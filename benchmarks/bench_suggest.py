#!/usr/bin/env python
"""Benchmark of workflow 4: which tiles to annotate (paper 001).

For each target data set the pool is its train split cut into 256² tiles; the model refitted on
the annotated tiles is the perceptron of workflow 3 (leave-one-class-out extractors: none was
trained on the target set) and it is scored on every test image (foreground Dice, mean over the
test images). Two protocols:

- **loop** (what the widget does): the first tile is chosen by the shipped network of another
  class adapted to the pool by the pretext task (histogram equalisation + Otsu + dilation);
  after each accepted tile the perceptron is refitted on every tile annotated so far and scores
  the remaining tiles itself. Budgets 1, 3, 5 are the first 1, 3, 5 tiles of that sequence.
- **once** (paper 001, Algorithm 1): the pretext-adapted network scores the pool once and the top
  1, 3, 5 tiles are annotated.

``random`` draws 10 tile sequences (mean ± sd). A score ``A+B`` (loop only) chooses the first tile by A and the
next ones by B, e.g. ``coverage+consistency``: the model-free cold start, then the refitted perceptron. A budget
whose tiles hold only one class cannot fit a perceptron: its prediction is all background (Dice 0 unless the test
image is empty), as a
user would see. Then: the time to score 100 tiles of 256² per score and model. See
benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import (
    Dataset,
    fg_dice,
    finish_report,
    loco_names,
    log,
    perceptron_dice,
    report_header,
    set_threads,
)

SETS = ["isbi2012_membrane", "dsb2018_fluo"]
SOURCE = {"isbi2012_membrane": "fluo_nuclei", "dsb2018_fluo": "em_membrane"}  # a network of another class
BUDGETS = [1, 3, 5]
SCORES = ["consistency", "entropy", "mc-dropout"]


def first_scorer(name: str, ds: Dataset) -> str:
    """The network that scores the first tile: :data:`SOURCE`'s, else the product's default for the set's images
    (fluo_nuclei for gray, he_nuclei for colour) unless it was trained on the set, then fluo_nuclei."""
    if name in SOURCE:
        return SOURCE[name]
    colour = np.asarray(ds.images[ds.train[0]]).ndim == 3
    pick = "he_nuclei" if colour else "fluo_nuclei"
    return pick if pick in loco_names(name) else "fluo_nuclei"


def evaluate(ds: Dataset, fx, chosen, test_ids, seed: int) -> tuple:
    """Fit the perceptron on the chosen (image id, box) tiles; mean foreground Dice on the test images."""
    from napari_fewcell.engine.core.errors import FewcellError
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    boxes: dict = {}
    for i, b in chosen:
        boxes.setdefault(i, []).append(b)
    data = [support(ds.images[i], ds.labels[i], bs, name=i) for i, bs in boxes.items()]
    try:
        model = run(fit_iter(data, PerceptronParams(seed=seed), extractors=fx))
    except FewcellError:  # one class only: nothing can be fitted, nothing is segmented
        return float(np.mean([fg_dice(np.zeros_like(ds.labels[t]), ds.labels[t]) for t in test_ids])), None
    return float(np.mean(perceptron_dice(model, fx, ds, test_ids))), model


def loop(ds, pool_ids, fx, first_scorer, score: str, test_ids, budget: int, scale: int | None = None,
         diverse: bool = False, seed: int = 0) -> tuple[dict, list]:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.suggest import PerceptronScorer, SuggestParams, candidates, suggest_iter

    images = [ds.images[i] for i in pool_ids]
    chosen, exclude, out, scorer = [], {}, {}, first_scorer
    first, _, later = score.partition("+")  # "coverage+consistency": the first tile by coverage, then consistency
    for b in range(1, budget + 1):
        now = first if b == 1 or not later else later
        left = len(candidates(images, 256, exclude)[1])  # near the end fewer are left: the widget asks for fewer
        top = min(5, left) if diverse else 1
        params = SuggestParams(score=now, top=top, scale=scale, diverse=diverse, seed=seed)
        hit = run(suggest_iter(images, scorer, params, exclude=exclude))[0]
        chosen.append((pool_ids[hit.image], hit.box))
        exclude.setdefault(hit.image, []).append(hit.box)
        dice, model = evaluate(ds, fx, chosen, test_ids, seed=b)
        if b in BUDGETS:
            out[b] = dice
        scorer = PerceptronScorer(model) if model is not None else first_scorer
        log(f"  {score} loop: tile {b} = {chosen[-1]}, Dice {dice:.1f}")
    return out, chosen


def once(ds, pool_ids, fx, scorer, score: str, test_ids, budget: int, scale: int | None = None) -> tuple[dict, list]:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.suggest import SuggestParams, suggest_iter

    hits = run(suggest_iter([ds.images[i] for i in pool_ids], scorer,
                            SuggestParams(score=score, top=budget, scale=scale)))
    chosen = [(pool_ids[h.image], h.box) for h in hits]
    return {b: evaluate(ds, fx, chosen[:b], test_ids, seed=b)[0] for b in BUDGETS if b <= budget}, chosen


def random_draws(ds, pool_ids, fx, test_ids, budget: int, draws: int) -> dict:
    """Tiles drawn uniformly, each draw skipping tiles that overlap one already drawn (as the widget
    never suggests a tile overlapping an accepted one; edge tiles of small images overlap)."""
    from napari_fewcell.engine.core.geometry import overlaps, tile_boxes

    cands = [(i, b) for i in pool_ids for b in tile_boxes(ds.labels[i].shape, 256)]
    res = {b: [] for b in BUDGETS}
    for d in range(draws):
        rng = np.random.default_rng(d)
        chosen = []
        for j in rng.permutation(len(cands)):
            i, b = cands[j]
            if not any(i == i2 and overlaps(b, b2) for i2, b2 in chosen):
                chosen.append((i, b))
            if len(chosen) == budget:
                break
        for b in BUDGETS:
            res[b].append(evaluate(ds, fx, chosen[:b], test_ids, seed=b)[0])
        log(f"  random draw {d}: " + ", ".join(f"{b}: {res[b][-1]:.1f}" for b in BUDGETS))
    return res


def coverage_timing(data: str, repeats: int) -> list[str]:
    """Seconds for the coverage score (no model) to describe and group the same 100 tiles of 256² and pick 5."""
    import torch

    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.suggest import SuggestParams, suggest_iter

    ds = Dataset(data, "isbi2012_membrane")
    images = [ds.images[i] for i in sorted(ds.images)[:25]]
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(suggest_iter(images, None, SuggestParams(score="coverage", top=5)))
        ts.append(time.perf_counter() - t0)
    log(f"  timing coverage: {np.median(ts):.2f} s")
    return ["", f"Coverage (no model; 100 tiles of 256² from 25 ISBI images, at 1/2 resolution, top 5; "
            f"{torch.get_num_threads()} threads, median of {repeats} runs): {np.median(ts):.2f} s.", ""]


def timing(data: str, repeats: int, full_res: bool) -> list[str]:
    """Seconds to score 100 tiles of 256² (25 ISBI images of 512², 4 tiles each)."""
    import torch

    from napari_fewcell.engine.core.annotation import annotate
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter
    from napari_fewcell.engine.nets.unet import NetConfig, SegNet
    from napari_fewcell.engine.partial import SegModel
    from napari_fewcell.engine.prompt import PromptParams, Segmenter
    from napari_fewcell.engine.suggest import (
        PerceptronScorer,
        PromptScorer,
        SegModelScorer,
        SuggestParams,
        shipped_network,
        suggest_iter,
    )
    from napari_fewcell.engine.suggest.tiles import scoring_scale

    ds = Dataset(data, "isbi2012_membrane")
    ids = sorted(ds.images)[:25]
    images = [ds.images[i] for i in ids]
    box = (0, 0, 64, 64)
    perc = run(fit_iter([annotate(images[0], ds.labels[ids[0]], [box])], PerceptronParams(), None))
    seg = Segmenter(PromptParams(device="cpu"))
    prompt = seg.prepare_prompt(images[0], ds.labels[ids[0]], box)
    models = {
        "shipped network (MSD, 30 layers)": shipped_network("em_membrane", device="cpu"),
        "perceptron (3 MSD networks + extras)": PerceptronScorer(perc),
        "stage-2 network (U-Net, default size)": SegModelScorer(SegModel(SegNet(NetConfig(embed_dim=2)), [0, 1],
                                                                         device="cpu")),
        "prompt segmenter (shipped embedding U-Net)": PromptScorer(seg, prompt),
    }
    rows = [f"## Time to score 100 tiles of 256² ({torch.get_num_threads()} CPU threads; median of "
            f"{repeats} runs at each model's own resolution, one run at full resolution; seconds)", "",
            "| model | scale | consistency | entropy | mc-dropout | random |", "|---|---|---|---|---|---|"]
    for label, scorer in models.items():
        own = scoring_scale(SuggestParams(), scorer)  # the model's own resolution (Scorer.scale)
        for scale in ([1, own] if full_res and label.startswith("shipped") else [own]):
            cells = []
            for score in ["consistency", "entropy", "mc-dropout", "random"]:
                ts = []
                for _ in range(repeats if scale > 1 else 1):
                    t0 = time.perf_counter()
                    run(suggest_iter(images, scorer, SuggestParams(score=score, scale=scale, top=5)))
                    ts.append(time.perf_counter() - t0)
                cells.append(f"{np.median(ts):.1f}")
                log(f"  timing {label} scale {scale} {score}: {cells[-1]} s")
            rows.append(f"| {label} | 1/{scale} | " + " | ".join(cells) + " |")
    from napari_fewcell.engine.suggest import PretextParams, pretext_iter

    t0 = time.perf_counter()
    run(pretext_iter(shipped_network("fluo_nuclei", device="cpu"), images, PretextParams()))
    rows += ["", f"Pretext task (pseudo-labels of the 25 images + {PretextParams.steps} steps of 8 crops of "
             f"{PretextParams.crop}²): {time.perf_counter() - t0:.1f} s.", "",
             f"torch threads: {torch.get_num_threads()}", ""]
    return rows


def accuracy_rows(args) -> list[str]:
    """The Dice table (random draws, then each protocol and score per set) and the tiles each chose."""
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot.features import Extractors
    from napari_fewcell.engine.suggest import PretextParams, pretext_iter, shipped_network

    draws, budget = (2 if args.quick else args.draws), max(BUDGETS)
    rep = ["| target | protocol | score | 1 tile | 3 tiles | 5 tiles |", "|---|---|---|---|---|---|"]
    picks = []
    for name in args.sets:
        log(f"{name}: loading")
        ds = Dataset(args.data, name)
        pool, test_ids = ds.train, ds.test
        if args.split == "val":
            k = round(len(ds.train) * 2 / 3)
            pool, test_ids = ds.train[:k], ds.train[k:]
        if args.quick:
            pool, test_ids = pool[:6], test_ids[:3]
        fx = Extractors(loco_names(name), device="cpu", cache_bytes=12 << 30)
        t0 = time.perf_counter()
        first = run(pretext_iter(shipped_network(first_scorer(name, ds), device="cpu"), [ds.images[i] for i in pool],
                                 PretextParams(steps=20 if args.quick else PretextParams.steps)))
        log(f"{name}: pretext {time.perf_counter() - t0:.0f} s")
        rnd = {b: [np.nan] for b in BUDGETS} if args.no_random else random_draws(ds, pool, fx, test_ids, budget, draws)
        rep.append(f"| {name} | — | random ({draws} draws) | " + " | ".join(
            f"{np.mean(rnd[b]):.1f} ± {np.std(rnd[b]):.1f}" for b in BUDGETS) + " |")
        for proto, fn in (("loop", loop), ("once", once)):
            if proto not in args.protocols:
                continue
            for score in [sc for sc in args.scores if proto == "loop" or "+" not in sc]:
                extra = {"diverse": args.diverse, "seed": args.seed} if proto == "loop" else {}
                res, chosen = fn(ds, pool, fx, first, score, test_ids, budget, args.scale, **extra)
                label = score + (" (diverse)" if extra.get("diverse") else "")
                rep.append(f"| {name} | {proto} | {label} | " + " | ".join(f"{res[b]:.1f}" for b in BUDGETS)
                           + " |")
                picks.append(f"- {name}, {proto}, {label}: " + "; ".join(f"{i} {list(b)}" for i, b in chosen))
                log(f"  {proto} {score}: " + ", ".join(f"{b}: {res[b]:.1f}" for b in BUDGETS))
        del fx
    return rep + ["", "Tiles chosen (image id, [y, x, h, w]):", "", *picks, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--coverage-timing-only", action="store_true", help="only time the coverage score")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 draws, 3 test images, 6 pool images")
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="val: pool = the first 2/3 of the train split, scored on the rest of it (for choosing "
                    "settings without the test images)")
    ap.add_argument("--scale", type=int, default=None,
                    help="score tiles at 1/SCALE resolution (default: each model's own, Scorer.scale)")
    ap.add_argument("--scores", nargs="+", default=SCORES)
    ap.add_argument("--no-diverse", dest="diverse", action="store_false",
                    help="loop: SuggestParams.diverse off (the plain score, as before 2026-12-05)")
    ap.add_argument("--no-random", action="store_true", help="skip the random draws (compare with an earlier run's)")
    ap.add_argument("--seed", type=int, default=0,
                    help="SuggestParams.seed of the loop (the k-means of coverage and of new kinds first, MC-dropout)")
    ap.add_argument("--protocols", nargs="+", default=["loop", "once"])
    ap.add_argument("--out", default="benchmarks/results/suggest.md")
    args = ap.parse_args()

    set_threads(args.threads)
    rep = [
        *report_header("napari-fewcell: what to annotate next", args.quick),
        "- tiles 256², scored at " + (f"1/{args.scale} resolution" if args.scale else "each model's own resolution "
                                      "(Scorer.scale: the network 1/2, the perceptron 1/3)")
        + "; model refitted = perceptron (logistic + BFGS) on leave-one-class-out extractors; foreground Dice %, mean "
        "over the "
        + ("test images" if args.split == "test" else "VALIDATION images (the last third of the train split; "
           "pool = its first two thirds)"), "",
    ]
    if not (args.timing_only or args.coverage_timing_only):
        rep += accuracy_rows(args)
    if args.coverage_timing_only:
        rep += coverage_timing(args.data, args.repeats)
    elif not args.no_timing:
        log("timing")
        rep += timing(args.data, 1 if args.quick else args.repeats, full_res=not args.quick)
        rep += coverage_timing(args.data, 1 if args.quick else args.repeats)
    finish_report(rep, args.out)


if __name__ == "__main__":
    main()
