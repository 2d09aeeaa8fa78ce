#!/usr/bin/env python
"""Three boxes vs one box, and one box + one correction stroke, leave one data set out (issue 14).

Per fold (a held-out set, or a held-out label folder, as in bench_generalise.py; one weights file per fold that
never saw it: the card check of bench_generalise refuses any other), ``--triples`` seeded "triples": three
non-overlapping 64×64 boxes (5–95 % foreground each) on ONE train image, as a user paints three boxes on the image
they have. The one-box prompt is the triple's first box. The correction stroke: the one-box prompt segments its own
image; on the largest connected component of wrong pixels outside the box the user paints a brush stroke (radius
2 px) along the component's skeleton (at most 150 skeleton pixels, those nearest the component's most interior
point), with the true class of its pixels. Six methods on the same boxes and stroke: fewcell and the
random-forest baseline with 1 box, 3 boxes, 1 box + the stroke; scored on the fold's first ``--max-test`` test
images. Imports bench_generalise.py for its weights parsing and LODO card check (so the two scripts refuse the
same files).

    cd benchmarks && PYTHONPATH=../src python bench_boxes.py --data /work/shared/data \
        --weights isbi2012_membrane@episodic=weights/lodo_isbi_episodic.pt ... (one per fold) \
        --triples 4 --max-test 6 --threads 1 --out results/boxes_test.md
    ... --quick --out /tmp/boxes_quick.md       # smoke test: 1 triple, 2 test images, the first 2 folds (~1.5 min)
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from bench_generalise import check_folds, fold_parser
from boxes_prompts import F1, F3, FC, HI, LO, METHODS, R1, R3, RC, Fewcell, Forest, make_triple
from common import (
    BOX,
    Dataset,
    ForestPrompt,
    RFBaseline,
    finish_report,
    log,
    mean_sd,
    report_header,
    score_prompts,
    set_threads,
)
from lodo import parse_weights, weights_lines
from strokes import RADIUS, SKELETON, add_check_strokes_option

from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt import PromptParams
from napari_fewcell.engine.training.datasets import split_name

FOLDS = ("isbi2012_membrane", "usiigaci_phase_contrast_cells", "tem_myelinated_axons",
         "tem_myelinated_axons:labels_myelin", "dsb2018_he", "coelho2009_nih3t3_nuclei",
         "isbi2014_cervical_synth_cells")
WEAK = 80.0  #: a fold is "one box weak" when fewcell's one-box Dice is below this
GAIN = 2.0  #: three boxes should beat one by this many points on weak folds ...
WEAK_FOLDS = 2  #: ... on at least this many of them


# ---- one fold ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Fold:
    fold: str
    ds: Dataset
    w: object  #: bench_generalise.Weights
    triples: list
    ids: list
    scores: dict

    def diff(self, a: str, b: str) -> np.ndarray:
        """Per triple: Dice of method a − method b."""
        return np.array(self.scores[a].per_box()) - np.array(self.scores[b].per_box())


def run_fold(args, fold: str, w, rf: RFBaseline) -> Fold:
    set_name, folder = split_name(fold)
    ds = Dataset(args.data, set_name, folder=folder or "labels")
    ids = ds.test[: args.max_test]
    model = load_model(w.path)
    few = {k: Fewcell(model, w.path, args.adapt, k, args.stroke_reach, args.check_strokes == "learn")
           for k in (F1, F3, FC)}
    triples = [make_triple(s, ds, few[F1], rf) for s in range(args.triples)]
    log(f"fold {fold}: {len(triples)} triples; scoring test images {ids}")
    shared = ForestPrompt(rf)
    methods = {**few, **{k: Forest(shared, k) for k in (R1, R3, RC)}}
    scores = score_prompts(ds, triples, ids, {k: methods[k] for k in METHODS})
    return Fold(fold, ds, w, triples, ids, scores)


# ---- report -----------------------------------------------------------------------------------------------
def paths_text(f: Fold, m: str) -> str:
    """How often auto (or the given path) took each path for method m's prompts, e.g. 'fuse ×3, none ×1'."""
    c = Counter(str(i["path"]) for i in f.scores[m].info)
    return ", ".join(f"{p} ×{n}" for p, n in c.most_common())


def summary(folds: list[Fold]) -> list[str]:
    out = ["| fold | weights | " + " | ".join(METHODS) + " | fewcell 3 − 1 | fewcell stroke − 1 | RF 3 − 1 | "
           "RF stroke − 1 | one box weak (< 80) |", "|" + "---|" * (len(METHODS) + 7)]
    for f in folds:
        d = [f.diff(a, b).mean() for a, b in ((F3, F1), (FC, F1), (R3, R1), (RC, R1))]
        out.append(f"| {f.fold} | {f.w.label} | " + " | ".join(mean_sd(f.scores[m].per_box()) for m in METHODS)
                   + " | " + " | ".join(f"{v:+.2f}" for v in d)
                   + f" | {'yes' if f.scores[F1].mean() < WEAK else 'no'} |")
    out += ["", "Differences per triple, fewcell (mean; min over triples):", "",
            "| fold | 3 − 1 mean | 3 − 1 min | triples with 3 < 1 | stroke − 1 mean | stroke − 1 min | stroke "
            "px (mean) | auto: 1 box | auto: 3 boxes | auto: 1 box + stroke |", "|" + "---|" * 10]
    for f in folds:
        d3, dc = f.diff(F3, F1), f.diff(FC, F1)
        px = np.mean([t.stroke["stroke_px"] for t in f.triples])
        out.append(f"| {f.fold} | {d3.mean():+.2f} | {d3.min():+.2f} | {int((d3 < 0).sum())}/{len(d3)} | "
                   f"{dc.mean():+.2f} | {dc.min():+.2f} | {px:.0f} | {paths_text(f, F1)} | {paths_text(f, F3)} | "
                   f"{paths_text(f, FC)} |")
    return out + own_table(folds)


def own_gain(f: Fold, a: str, b: str) -> float:
    """Mean over triples of the Dice difference a − b on the prompt image itself (stroke pixels left out)."""
    d = [t.own[a] - t.own[b] for t in f.triples if t.own]
    return float(np.mean(d)) if d else float("nan")


def own_table(folds: list[Fold]) -> list[str]:
    out = ["", "On the image the user corrects (the prompt image; the stroke's own pixels left out), Dice % (mean over "
           "triples):", "", "| fold | fewcell 1 box | fewcell 1 box + stroke | fewcell stroke − 1 | RF 1 box | "
           "RF 1 box + stroke | RF stroke − 1 |", "|" + "---|" * 7]
    for f in folds:
        m = {k: np.mean([t.own[k] for t in f.triples if t.own]) for k in (F1, FC, R1, RC)}
        out.append(f"| {f.fold} | {m[F1]:.2f} | {m[FC]:.2f} | {own_gain(f, FC, F1):+.2f} | {m[R1]:.2f} | "
                   f"{m[RC]:.2f} | {own_gain(f, RC, R1):+.2f} |")
    return out


def targets(folds: list[Fold]) -> list[str]:
    lodo = [f for f in folds if f.w.lodo]

    def verdict(ok: bool, n: int) -> str:
        return "no LODO fold in this run" if not n else ("**met**" if ok else "**not met**")

    weak = [f for f in lodo if f.scores[F1].mean() < WEAK]
    gains = {f.fold: f.diff(F3, F1).mean() for f in weak}
    won = [k for k, v in gains.items() if v >= GAIN]
    means = {f.fold: f.diff(F3, F1).mean() for f in lodo}
    mins = {f.fold: f.diff(F3, F1).min() for f in lodo}
    below = sum(int((f.diff(F3, F1) < 0).sum()) for f in lodo)
    n_trip = sum(len(f.triples) for f in lodo)
    corr = {f.fold: f.diff(FC, F1) for f in lodo}
    rf_gain = {f.fold: f.diff(R3, R1).mean() for f in weak}
    out = [
        f"- folds where one box is weak (fewcell one-box Dice < {WEAK:.0f}): {len(weak)} of {len(lodo)} — "
        + (", ".join(f"{f.fold} ({f.scores[F1].mean():.2f})" for f in weak) or "none"),
        f"- three boxes ≥ one box + {GAIN:.0f} on at least {WEAK_FOLDS} weak folds: "
        f"{verdict(len(won) >= WEAK_FOLDS, len(lodo))} — on {len(won)} of {len(weak)} "
        f"({', '.join(f'{k} {v:+.2f}' for k, v in gains.items()) or '—'}); RF on the same weak folds: "
        f"{', '.join(f'{k} {v:+.2f}' for k, v in rf_gain.items()) or '—'}",
        f"- three boxes never below one box (per fold mean): {verdict(all(v >= 0 for v in means.values()), len(lodo))}"
        f" — {', '.join(f'{k} {v:+.2f}' for k, v in means.items())}",
        f"- per triple (not the target, the worst case): three boxes below one box on {below} of {n_trip} triples; "
        f"worst triple per fold {', '.join(f'{k} {v:+.2f}' for k, v in mins.items())}",
        f"- one box + one correction stroke beats one box alone: "
        f"{verdict(all(v.mean() > 0 for v in corr.values()), len(lodo))} on every fold's mean — by "
        + ", ".join(f"{k} {v.mean():+.2f} (min {v.min():+.2f})" for k, v in corr.items())
        + (f"; mean over folds {np.mean([v.mean() for v in corr.values()]):+.2f}" if corr else "")
        + "; RF with the same stroke: "
        + ", ".join(f"{f.fold} {f.diff(RC, R1).mean():+.2f}" for f in lodo),
    ]
    own = {f.fold: own_gain(f, FC, F1) for f in lodo}
    out.append("- on the image the user corrects (the stroke's pixels left out), one box + the stroke against one "
               f"box: {', '.join(f'{k} {v:+.2f}' for k, v in own.items())}; RF: "
               + ", ".join(f"{f.fold} {own_gain(f, RC, R1):+.2f}" for f in lodo))
    skipped = [f"{f.fold} · {f.w.strategy}" for f in folds if not f.w.lodo]
    if skipped:
        out.append(f"- **NOT LODO, not counted above:** {', '.join(skipped)}")
    return out


def fold_section(f: Fold) -> list[str]:
    out = [f"## {f.fold}: `{f.ds.name}/{f.ds.folder}`, weights {f.w.label}, {len(f.triples)} triples, "
           f"{len(f.ids)} scored images ({', '.join(f.ids)})", "",
           "| triple | source | box 1 (y, x, fg %) = the one box | box 2 | box 3 | fewcell 1 box on its own image | "
           "error component px | stroke px (fg px) | auto: 1 box (est.) | 3 boxes (est.) | 1 box + stroke (est.) |",
           "|" + "---|" * 11]

    def path(m, i):
        info = f.scores[m].info[i]
        est = info["check"].get(info["path"])
        return f"{info['path']}" + (f" ({100 * est:.1f})" if est is not None else "")

    for i, t in enumerate(f.triples):
        s = t.stroke
        bx = [f"({y}, {x}, {p:.0f})" for (y, x), p in zip(t.boxes, t.fg)]
        out.append(f"| {t.seed} | {t.src} | {' | '.join(bx)} | {t.self_dice:.2f} | {s['component_px']} | "
                   f"{s['stroke_px']} ({s['fg_px']}) | {path(F1, i)} | {path(F3, i)} | {path(FC, i)} |")
    out += ["", "| triple | " + " | ".join(METHODS) + " | fewcell 3 − 1 | fewcell stroke − 1 |", "|" + "---|" * 9]
    for i, t in enumerate(f.triples):
        out.append(f"| {t.seed} | " + " | ".join(f"{f.scores[m].per_box()[i]:.2f}" for m in METHODS)
                   + f" | {f.diff(F3, F1)[i]:+.2f} | {f.diff(FC, F1)[i]:+.2f} |")
    out += ["", "| method | Dice % (mean ± sd over triples) | worst triple | fg Dice % |", "|---|---|---|---|"]
    for m in METHODS:
        sc = f.scores[m]
        out.append(f"| {m} | {mean_sd(sc.per_box())} | {min(sc.per_box()):.2f} | {np.mean(sc.fg):.2f} |")
    out += ["", "| difference | mean | min over triples | max over triples |", "|---|---|---|---|"]
    for name, (a, b) in (("fewcell 3 boxes − 1 box", (F3, F1)), ("fewcell 1 box + stroke − 1 box", (FC, F1)),
                         ("RF 3 boxes − 1 box", (R3, R1)), ("RF 1 box + stroke − 1 box", (RC, R1)),
                         ("fewcell − RF, 1 box", (F1, R1)), ("fewcell − RF, 3 boxes", (F3, R3)),
                         ("fewcell − RF, 1 box + stroke", (FC, RC))):
        d = f.diff(a, b)
        out.append(f"| {name} | {d.mean():+.2f} | {d.min():+.2f} | {d.max():+.2f} |")
    return out + [""]


def engine_line(adapt: str, reach: str = "local", check_strokes: bool = True) -> str:
    """The engine this run imported: git HEAD, uncommitted changes under src/ (others edit it while benchmarks
    run), and the PromptParams every fewcell prompt used."""
    import hashlib
    import subprocess

    import napari_fewcell

    root = Path(napari_fewcell.__file__).parents[2]

    def git(*a) -> str:
        r = subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True, check=False)
        return r.stdout.rstrip() if r.returncode == 0 else ""

    head, changed = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", "src").splitlines()
    diff = hashlib.sha256(git("diff", "HEAD", "--", "src").encode()).hexdigest()[:12]
    used = PromptParams(adapt=adapt, stroke_reach=reach, check_strokes=check_strokes)
    params = {k: v for k, v in dataclasses.asdict(used).items() if k not in ("weights", "device")}
    return (f"- engine: `{napari_fewcell.__file__}`, git HEAD {head or '?'}"
            + (f", with uncommitted changes under src/ (diff sha256 {diff}: {', '.join(c[3:] for c in changed)})"
               if changed else ", no uncommitted change under src/")
            + f"; PromptParams {params}")


def parse_args() -> argparse.Namespace:
    ap = fold_parser(__doc__, "weights pre-trained without FOLD: exactly one per fold (card-checked as "
                     "bench_generalise)", "score weights that saw their fold (labelled NOT LODO, left out of the "
                     "targets)", FOLDS)
    ap.add_argument("--triples", type=int, default=3, help="seeded triples of boxes per fold (seeds 0..K-1)")
    ap.add_argument("--max-test", type=int, default=6, help="score the first N test images")
    ap.add_argument("--adapt", default="auto", help="PromptParams.adapt for every fewcell prompt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stroke-reach", default="local", choices=("local", "everywhere"),
                    help="PromptParams.stroke_reach: local (the default) changes the corrected image near the stroke "
                    "only and no other image; everywhere, the stroke is learnt for every image")
    add_check_strokes_option(ap)
    ap.add_argument("--out", help="default benchmarks/results/boxes[_quick].md")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 triple, 2 test images, the first 2 folds")
    ap.add_argument("--note", action="append", default=[], help="a line for the report header (repeatable)")
    args = ap.parse_args()
    if min(args.triples, args.max_test, args.threads) < 1:
        ap.error("--triples, --max-test and --threads must be at least 1")
    args.folds = args.folds or list(FOLDS)
    if args.quick:
        args.folds, args.triples, args.max_test = args.folds[:2], 1, 2
        args.weights = [w for w in args.weights if w.partition("=")[0].partition("@")[0] in args.folds]
    args.out = args.out or f"benchmarks/results/boxes{'_quick' if args.quick else ''}.md"
    check_folds(ap, args)
    return args


def main() -> None:
    args = parse_args()
    weights = parse_weights(args)  # refuses weights that saw their fold before any work
    several = [f for f, ws in weights.items() if len(ws) != 1]
    if several:
        sys.exit(f"bench_boxes: error: give exactly one --weights per fold ({', '.join(several)} have several)")
    set_threads(args.threads)
    engine = engine_line(args.adapt, args.stroke_reach, args.check_strokes == "learn")  # what this process imported
    log(engine)
    rf, load = RFBaseline(args.threads), [os.getloadavg()[0]]
    folds = []
    for n, fold in enumerate(args.folds):
        log(f"fold {n + 1}/{len(args.folds)}: {fold}")
        folds.append(run_fold(args, fold, weights[fold][0], rf))
    load.append(os.getloadavg()[0])
    rep = [
        *report_header("napari-fewcell: three boxes vs one, and one correction stroke (leave one data set out)",
                       args.quick, libs=("sklearn", "skimage")),
        f"- scored: the first {args.max_test} test images of each fold; {args.triples} seeded triples per fold "
        f"(seeds 0–{args.triples - 1}): three non-overlapping {BOX}×{BOX} boxes on ONE train image, each "
        f"{LO:.0%}–{HI:.0%} foreground (the train images in a seeded order, the first holding three such boxes; "
        "each box uniform among the valid positions overlapping no earlier box). One box = the triple's first box "
        "(drawn as bench_generalise draws its box), so one box and three boxes share it",
        f"- correction stroke (one per triple, the same for fewcell and RF): fewcell with the one box segments the "
        f"prompt image itself; the largest 8-connected component of wrong pixels outside the box is corrected by a "
        f"brush stroke of radius {RADIUS} px along the component's skeleton (`skimage.morphology.skeletonize`), "
        f"restricted to the component, of at most {SKELETON} skeleton pixels — those nearest the component's most "
        "interior point (maximum of its distance transform); the corrections array holds the true class of the "
        "stroke's pixels, −1 elsewhere (`prepare_prompt_boxes(image, labels, [box], corrections=...)`)",
        f"- stroke reach `{args.stroke_reach}`: " + ("the corrected image keeps the new labels only where they are "
        "8-connected to the stroke within 64 px (`local_changes`, as the widget does); every other image keeps "
        "its one-box labels, so on the test images `1 box + stroke` equals `1 box` by design"
        if args.stroke_reach == "local" else "the stroke is learnt for every image (before 2026-12-06)"),
        f"- fewcell: `Segmenter(PromptParams(weights=..., adapt=\"{args.adapt}\"))`, "
        "`prepare_prompt_boxes(image, labels, boxes, corrections)`; a fresh copy of the network per prompt; the "
        "path `auto` chose (`prompt.path`) and its self-check estimate × 100 are listed per prompt",
        engine, *weights_lines(weights), *(f"- note: {n}" for n in args.note),
        "- metric: per scored image, mean of foreground and background Dice %; averaged over the images, then over "
        "triples (mean ± sd over triples, worst triple); differences are per triple, then averaged (or min)",
        "- RF baseline (ilastik-style, common.py): `multiscale_basic_features` (intensity, edges, texture, sigma "
        "1–16) of the prompt image, 100 trees fitted on the first box's 4,096 pixels (1 box), the three boxes' "
        "12,288 pixels (3 boxes), or the first box's pixels + the stroke's pixels (1 box + stroke)",
        f"- CPU load (1-min average) at start {load[0]:.2f}, at end {load[1]:.2f}; no times are reported "
        "(an accuracy benchmark" + ("; fine-tuning is not a candidate of `auto`, so the CPU load does not change "
                                    "its choice)" if args.adapt == "auto" else ")"),
        "", "## Summary: Dice % (mean ± sd over triples)", "", *summary(folds), "",
        "### Targets", "", *targets(folds), "",
        *[line for f in folds for line in fold_section(f)],
    ]
    finish_report(rep, args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
