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
import copy
import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from bench_generalise import check_folds, fold_parser, parse_weights, weights_lines
from common import (
    BOX,
    RADIUS,
    SKELETON,
    Dataset,
    ForestPrompt,
    RFBaseline,
    box_fractions,
    correction_stroke,
    dice_pct,
    finish_report,
    log,
    mean_sd,
    report_header,
    score_prompts,
    set_threads,
)

from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.training.datasets import split_name

FOLDS = ("isbi2012_membrane", "usiigaci_phase_contrast_cells", "tem_myelinated_axons",
         "tem_myelinated_axons:labels_myelin", "dsb2018_he", "coelho2009_nih3t3_nuclei",
         "isbi2014_cervical_synth_cells")
LO, HI = 0.05, 0.95  #: foreground fraction of every box
WEAK = 80.0  #: a fold is "one box weak" when fewcell's one-box Dice is below this
GAIN = 2.0  #: three boxes should beat one by this many points on weak folds ...
WEAK_FOLDS = 2  #: ... on at least this many of them
F1, F3, FC = "fewcell 1 box", "fewcell 3 boxes", "fewcell 1 box + stroke"
R1, R3, RC = "RF 1 box", "RF 3 boxes", "RF 1 box + stroke"
METHODS = (F1, F3, FC, R1, R3, RC)


# ---- prompts: a triple of boxes on one image, and the correction stroke ----------------------------------
def seeded_triple(seed: int, ds: Dataset) -> tuple[str, list[tuple[int, int]]]:
    """Seeded (train id, [(y, x)] × 3): three non-overlapping BOX×BOX boxes with LO–HI foreground on one image.
    The train images in a seeded order, the first that holds three such boxes; each box drawn uniformly among the
    valid positions that overlap no box drawn before (the first box is drawn as ``common.seeded_box`` draws its
    box, so it is the same box when that image holds a triple)."""
    rng = np.random.default_rng(seed)
    for src in rng.permutation(ds.train):
        frac = box_fractions(ds.labels[src])
        valid = (frac >= LO) & (frac <= HI)
        boxes = []
        for _ in range(3):
            ys, xs = np.nonzero(valid)
            if not len(ys):
                break
            k = int(rng.integers(len(ys)))
            y, x = int(ys[k]), int(xs[k])
            boxes.append((y, x))
            valid[max(0, y - BOX + 1) : y + BOX, max(0, x - BOX + 1) : x + BOX] = False  # would overlap (y, x)
        if len(boxes) == 3:
            return str(src), boxes
    sys.exit(f"No train image of {ds.name} ({ds.folder}) holds three non-overlapping {BOX}×{BOX} boxes with "
             f"{LO:.0%}–{HI:.0%} foreground.")


@dataclasses.dataclass
class Triple:
    """One triple of boxes and everything the six methods share: the one-box fewcell prompt (adapted), the stroke,
    and the three forests (fitted on the prompt image's features, computed once)."""

    seed: int
    src: str
    boxes: list  #: [(y, x)] × 3; the first is the one-box prompt
    fg: list  #: foreground % of each box
    stroke: dict
    self_dice: float  #: fewcell one-box Dice % on its own prompt image (what the stroke corrects)
    one: tuple  #: (segmenter, prompt) of the one-box fewcell prompt
    forests: dict  #: method → fitted forest
    #: Dice % on the prompt image itself, the stroke's pixels left out: {method: Dice} for 1 box and 1 box + stroke
    own: dict = dataclasses.field(default_factory=dict)


class Fewcell:
    """fewcell prompted with a triple's first box, its three boxes, or its first box + the stroke."""

    def __init__(self, model, weights: str, adapt: str, kind: str):
        self.model, self.params, self.kind = model, {"weights": weights, "device": "cpu", "adapt": adapt}, kind

    def new(self) -> Segmenter:
        """A segmenter with a fresh copy of the network (as bench_generalise): no prompt alters another's."""
        return Segmenter(PromptParams(**self.params), model=copy.deepcopy(self.model))

    def one_box(self, ds: Dataset, src: str, box) -> tuple:
        seg = self.new()
        prompt = seg.prepare_prompt_boxes(ds.images[src], ds.labels[src], [(*box, BOX, BOX)])
        seg.adapt(prompt)
        return seg, prompt

    def prepare(self, ds: Dataset, t: Triple):
        if self.kind == F1:
            seg, prompt = t.one
        else:
            seg = self.new()
            boxes = [(y, x, BOX, BOX) for y, x in (t.boxes if self.kind == F3 else t.boxes[:1])]
            corr = t.stroke["corrections"] if self.kind == FC else None
            prompt = seg.prepare_prompt_boxes(ds.images[t.src], ds.labels[t.src], boxes, corrections=corr)
            seg.adapt(prompt)
        info = {"path": prompt.path, "check": dict(prompt.check or {}), "notes": dict(prompt.notes or {})}
        return (seg, prompt), 0.0, info

    @staticmethod
    def apply(state, img, key):
        seg, prompt = state
        return seg.segment(img, prompt), 0.0


class Forest:
    """The RF baseline of common.py with a triple's forest (fitted in :func:`make_triple`); the three RF methods
    share one ForestPrompt, so each scored image's features are computed once."""

    def __init__(self, shared: ForestPrompt, kind: str):
        self.shared, self.kind = shared, kind

    def prepare(self, ds: Dataset, t: Triple):
        return t.forests[self.kind], 0.0, {}

    def apply(self, clf, img, key):
        return self.shared.apply(clf, img, key)


def fit_forests(rf: RFBaseline, ds: Dataset, src: str, boxes, stroke) -> dict:
    """The RF baseline fitted on the first box's pixels, the three boxes' pixels, and the first box's + the
    stroke's pixels (features of the prompt image computed once)."""
    feat, lab = rf.features(ds.images[src]), ds.labels[src]
    inbox = [np.zeros(lab.shape, bool) for _ in boxes]
    for m, (y, x) in zip(inbox, boxes):
        m[y : y + BOX, x : x + BOX] = True
    sets = {R1: inbox[0], R3: inbox[0] | inbox[1] | inbox[2],
            RC: inbox[0] | (stroke["mask"] if stroke["mask"] is not None else False)}
    return {k: rf.forest(feat[m], lab[m]) for k, m in sets.items()}


def make_triple(seed: int, ds: Dataset, one: Fewcell, rf: RFBaseline) -> Triple:
    src, boxes = seeded_triple(seed, ds)
    img, lab = ds.images[src], ds.labels[src]
    seg, prompt = one.one_box(ds, src, boxes[0])
    pred = seg.segment(img, prompt)
    stroke = correction_stroke(pred, lab, boxes[0])
    fg = [100 * float(lab[y : y + BOX, x : x + BOX].mean()) for y, x in boxes]
    log(f"{ds.name}: triple {seed}: image {src}, boxes {boxes}; one-box path {prompt.path}; stroke "
        f"{stroke['stroke_px']} px on a {stroke['component_px']} px error component")
    forests = fit_forests(rf, ds, src, boxes, stroke)
    return Triple(seed, src, boxes, fg, stroke, dice_pct(pred, lab), (seg, prompt), forests,
                  own_image(ds, src, boxes[0], stroke, seg, pred, rf, forests))


def own_image(ds: Dataset, src: str, box, stroke: dict, seg, pred, rf: RFBaseline, forests: dict) -> dict:
    """Dice % on the image the user corrects, before and after the stroke, the stroke's own pixels left out
    (what the interactive loop shows the user), fewcell and the RF."""
    img, lab = ds.images[src], ds.labels[src]
    if stroke["mask"] is None:
        return {}
    keep = ~stroke["mask"]
    y, x = box
    after = seg.segment(img, seg.prepare_prompt_boxes(img, lab, [(y, x, BOX, BOX)], corrections=stroke["corrections"]))
    feat = rf.features(img)
    return {F1: dice_pct(pred[keep], lab[keep]), FC: dice_pct(after[keep], lab[keep]),
            R1: dice_pct(rf.predict(forests[R1], feat)[keep], lab[keep]),
            RC: dice_pct(rf.predict(forests[RC], feat)[keep], lab[keep])}


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
    few = {k: Fewcell(model, w.path, args.adapt, k) for k in (F1, F3, FC)}
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


def engine_line(adapt: str) -> str:
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
    params = {k: v for k, v in dataclasses.asdict(PromptParams(adapt=adapt)).items() if k not in ("weights", "device")}
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
    engine = engine_line(args.adapt)  # at the start: what this process imported
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
