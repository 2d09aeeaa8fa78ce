#!/usr/bin/env python
"""The shipped weights on the default path (issue 20's in-domain row: ISBI ≥ 86.5, DSB fluorescence ≥ 95), beside
prompt attention alone (bench_prompt.py's figures) and the RF on the same boxes: bench_prompt.py's protocol (6 seeded
64×64 boxes from the train images, every test image; Dice % = mean of foreground and background Dice).

    python studies/study_shipped_default.py --data ../shared/data --out results/shipped_default.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse

import numpy as np
from bench_prompt import BOX, one_shot, pick_box
from common import Dataset, RFBaseline, finish_report, log, report_header, set_threads

SETS = {"isbi2012_membrane": (1 / BOX**2, 1 - 1 / BOX**2), "dsb2018_fluo": (0.05, 0.60)}  #: bench_prompt's boxes
HANDICAPS = (0.0, 0.01, 0.02, 0.03, 0.05)


def estimates(seg, ds: Dataset, box) -> dict:
    """The default path's self-check estimates for a box ({path: estimate})."""
    src, y, x = box
    prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
    seg.adapt(prompt)
    return dict(prompt.check)


def study_args(doc: str, out: str, extra=()) -> argparse.Namespace:
    """The command line of a study on bench_prompt.py's boxes: --data, --boxes, --threads, --out (default ``out``),
    and the ``extra`` options ((args, kwargs) of ``add_argument``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--boxes", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=out)
    for args, kw in extra:
        ap.add_argument(*args, **kw)
    return ap.parse_args()


def main() -> None:
    a = study_args(__doc__, "results/shipped_default.md", [(("--smooth-sigma-max",), dict(
        type=int, help="the forests read the smoothed intensity up to this scale (default: the engine's, "
        "prompt/filters.SMOOTH_SIGMA_MAX; 16: every scale, the bank before 2026-12-06)")),
        (("--note",), dict(default="", help="a line for the report (what a study that runs this one changed)")),
        (("--balance",), dict(type=float, default=None, help="PromptParams.balance for every path (default: the "
                              "engine's)")),
        (("--sparse-balance",), dict(type=float, default=None, help="PromptParams.sparse_balance (default: the "
                                     "engine's)")),
        (("--forest-balance",), dict(type=float, default=None, help="PromptParams.forest_balance (default: the "
                                     "engine's)")),
        (("--weights",), dict(default=None, help="an embedding weights file instead of the shipped one (a candidate "
                              "to ship)"))])
    from napari_fewcell.engine.prompt import PromptParams, Segmenter, filters
    from napari_fewcell.engine.prompt.adapt import choose

    if a.smooth_sigma_max is not None:
        filters.SMOOTH_SIGMA_MAX = a.smooth_sigma_max

    set_threads(a.threads)
    more = {k: v for k, v in (("balance", a.balance), ("forest_balance", a.forest_balance),
                                                 ("sparse_balance", a.sparse_balance)) if v is not None}
    plain = Segmenter(PromptParams(device="cpu", adapt="none", weights=a.weights, **more))
    segs = {"attention alone": plain, "default path": Segmenter(PromptParams(device="cpu", **more), model=plain.model),
            "fused path": Segmenter(PromptParams(device="cpu", adapt="fuse", **more), model=plain.model)}
    rows, replays = [], []
    for name, (lo, hi) in SETS.items():
        ds = Dataset(a.data, name)
        boxes = [pick_box(s, ds, lo, hi) for s in range(a.boxes)]
        res = one_shot(ds, boxes, segs, RFBaseline(a.threads), ds.test)
        checks = [estimates(segs["default path"], ds, box) for box in boxes]
        paths = [choose(c) for c in checks]
        means = {m: [float(np.mean(r[m][0])) for r in res] for m in [*segs, "RF baseline"]}
        log(f"{name}: " + ", ".join(f"{m} {np.mean(v):.2f}" for m, v in means.items()) + f"; checks {checks}")
        rows.append(f"| {name} | " + " | ".join(f"{np.mean(v):.2f} ± {np.std(v, ddof=1):.2f}" for v in means.values())
                    + f" | {', '.join(paths)} |")
        got = {"none": means["attention alone"], "fuse": means["fused path"]}
        for h in HANDICAPS:  # auto with the fused path's estimate lowered by h (ties to attention, as choose())
            pick = [choose(c, {"fuse": h}) for c in checks]
            replays.append(f"| {name} | {h:g} | {np.mean([got[p][b] for b, p in enumerate(pick)]):.2f} | "
                           f"{', '.join(pick)} |")
        replays.append(f"| {name} | checks (none / fuse) | | "
                       + ", ".join(f"{c['none']:.3f} / {c['fuse']:.3f}" if c else "no estimate" for c in checks) + " |")
        replays.append(f"| {name} | Dice per box (none / fuse) | | "
                       + ", ".join(f"{n:.1f} / {f:.1f}" for n, f in zip(got["none"], got["fuse"])) + " |")
    rep = report_header("The shipped weights on the default path (issue 20, in-domain)", False) + [
        f"- {a.boxes} seeded 64×64 boxes per set (bench_prompt.py's), every test image; Dice % mean ± sd over boxes",
        f"- weights: {a.weights or 'the shipped ones'}; attention's class balance "
        f"{segs['default path'].params.balance:g}, the forests' {segs['default path'].params.forest_balance:g}, "
        f"sparse boxes' {segs['default path'].params.sparse_balance:g}",
        f"- the forests read the smoothed intensity up to σ {filters.SMOOTH_SIGMA_MAX} "
        "(prompt/filters.SMOOTH_SIGMA_MAX)", *([f"- note: {a.note}"] if a.note else []),
        "", "| set | attention alone | default path | fused path | RF baseline | default path's choice per box |",
        "|---|---|---|---|---|---|", *rows, "",
        "Replayed: auto with the fused path's estimate lowered by a handicap (mean Dice % over the boxes)", "",
        "| set | handicap | Dice % | choice per box |", "|---|---|---|---|", *replays, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
