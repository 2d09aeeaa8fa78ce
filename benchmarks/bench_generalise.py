#!/usr/bin/env python
"""Leave-one-data-set-out (LODO) benchmark of prompt segmentation: does Segment work on image types the
network never saw?

To score a fold (a held-out set, or a held-out label folder of a set) the embedding weights must have been
pre-trained without it: their card is checked, and weights that saw it are refused (``--allow-seen``: labelled
NOT LODO instead). Seeded 64×64 boxes cut from the fold's train split prompt fewcell (each adapt path) and the
random-forest baseline; scored on the fold's test split (``--split val``: on the train images no box was cut
from). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
from cards import card_chain
from common import (
    BOX,
    Dataset,
    ForestPrompt,
    RFBaseline,
    finish_report,
    log,
    mean_sd,
    report_header,
    rf_cli,
    rf_end_to_end,
    score_prompts,
    seeded_box,
    segment_cli,
    set_threads,
    timed,
)
from lodo import Weights, parse_weights, weights_lines

from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.training.datasets import split_name

FOLDS = ("isbi2012_membrane", "usiigaci_phase_contrast_cells", "dsb2018_he", "tem_myelinated_axons",
         "tem_myelinated_axons:labels_myelin")
ADAPT = ("none", "forest", "fuse", "finetune", "auto")
RF = "RF baseline"


def adapt_paths() -> tuple[list[str], str, bool]:
    """(adapt paths to benchmark, the default one, whether PromptParams has ``adapt`` in this checkout)."""
    fields = {f.name: f for f in dataclasses.fields(PromptParams)}
    if "adapt" not in fields:
        return ["none"], "none", False
    return list(ADAPT), str(fields["adapt"].default), True


def adapt_line(paths, default: str, has_adapt: bool) -> str:
    if not has_adapt:
        return "- `PromptParams` has no `adapt` in this checkout: only the plain path (`none`) is benchmarked"
    p = PromptParams()
    budget = getattr(p, "finetune_seconds", None)
    return (f"- adapt paths: {', '.join(paths)}; default `{default}`; adaptation (self-check + fit) is timed with "
            "the prompt" + (f"; fine-tuning stops after {getattr(p, 'finetune_steps', '?')} steps or {budget} s: "
                            "on a shared CPU it does fewer steps, so `finetune`/`auto` depend on the load"
                            if budget is not None else ""))


def cli_has_adapt() -> bool:
    from napari_fewcell.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "--adapt" in sub.choices["segment"]._option_string_actions


# ---- prompts and scoring ------------------------------------------------------------------------------
def scored_ids(ds: Dataset, boxes, split: str, n: int) -> list[str]:
    """The first ``n`` test ids, or (val) the first ``n`` train ids no box was cut from."""
    used = {b[0] for b in boxes}
    ids = ds.test[:n] if split == "test" else [i for i in ds.train if i not in used][:n]
    if not ids:
        sys.exit(f"bench_generalise: error: {ds.name} has no {split} image left to score")
    return ids


class Fewcell:
    """fewcell with one weights file and one adapt path; a fresh copy of the network per prompt."""

    def __init__(self, model, weights: str, path: str, has_adapt: bool):
        self.model, self.params = model, {"weights": weights, "device": "cpu", **({"adapt": path} if has_adapt else {})}

    def prepare(self, ds: Dataset, box):
        src, y, x = box
        seg = Segmenter(PromptParams(**self.params), model=copy.deepcopy(self.model))  # no path alters the next box's

        def prep():  # embed the box, its k-means prototypes, and the adaptation (self-check + fit): once per prompt
            p = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
            seg.keys(p)
            if hasattr(seg, "adapt"):
                seg.adapt(p)
            return p

        prompt, secs = timed(prep)
        info = {"check": dict(getattr(prompt, "check", None) or {}), "path": getattr(prompt, "path", None),
                "shown": figure_shown(prompt)}
        return (seg, prompt), secs, info

    @staticmethod
    def apply(state, img, key):
        seg, prompt = state
        return timed(seg.segment, img, prompt)


# ---- end to end: the CLI as a user runs it vs the RF baseline ------------------------------------------
def end_to_end(args, ds: Dataset, box, ids, w: Weights, adapt: str, rf: RFBaseline) -> list[str]:
    opt = ["--adapt", adapt] if cli_has_adapt() else []
    t_cli, error = segment_cli(args.data, ds, box, ids, w.path, opt, args.threads)
    t_cmd, rf_error = rf_cli(args.data, ds, box, ids, args.threads)
    if error or rf_error:
        log(f"{ds.name}: a command failed: {error or rf_error}")
        return [f"- {'`fewcell segment`' if error else 'the RF command'} **failed**: {error or rf_error}"]
    t_rf, n = rf_end_to_end(rf, args.data, ds, box, ids), len(ids)
    log(f"{ds.name}: end to end fewcell {t_cli:.1f} s, RF command {t_cmd:.1f} s, RF in process {t_rf:.1f} s")
    return [f"Weights {w.label}, box 0, the {n} scored images.", "", "| end to end | seconds | s / image |",
            "|---|---|---|", f"| `{' '.join(['fewcell segment', *opt])}` in a subprocess (start-up, model load, "
            f"prompt, read, segment, write) | {t_cli:.2f} | {t_cli / n:.2f} |", "| RF baseline as a command in a "
            f"subprocess (benchmarks/rf_cli.py: start-up, read, features, fit, predict, write) | {t_cmd:.2f} | "
            f"{t_cmd / n:.2f} |", "| RF baseline in this process (read, features + fit on the prompt image, "
            f"features + predict; no start-up, no writing) | {t_rf:.2f} | {t_rf / n:.2f} |",
            f"| **ratio fewcell / RF command** (equal terms) | **{t_cli / t_cmd:.2f}** | |",
            f"| ratio fewcell / RF in this process | {t_cli / t_rf:.2f} | |"]


# ---- one fold ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Fold:
    fold: str
    ds: Dataset
    boxes: list
    ids: list
    weights: list
    scores: dict
    e2e: list


def key(w: Weights, path: str) -> str:
    return f"fewcell {path} · {w.strategy}"


def run_fold(args, fold: str, ws: list[Weights], paths, default: str, has_adapt: bool, rf: RFBaseline) -> Fold:
    set_name, folder = split_name(fold)
    ds = Dataset(args.data, set_name, folder=folder or "labels")
    boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(args.boxes)]  # both classes in every box
    ids = scored_ids(ds, boxes, args.split, args.max_test)
    log(f"fold {fold}: boxes {boxes}; scoring {args.split} images {ids}")
    methods = {}
    for w in ws:
        model = load_model(w.path)
        methods.update({key(w, p): Fewcell(model, w.path, p, has_adapt) for p in paths})
    methods[RF] = ForestPrompt(rf)
    scores = score_prompts(ds, boxes, ids, methods)
    e2e = [] if args.no_end_to_end else end_to_end(args, ds, boxes[0], ids, ws[0], default, rf)
    return Fold(fold, ds, boxes, ids, ws, scores, e2e)


# ---- report -------------------------------------------------------------------------------------------
def summary(folds: list[Fold], paths, default: str) -> list[str]:
    cols = [default] + [p for p in paths if p != default]
    out = ["| fold | weights | " + " | ".join(f"fewcell {p}" + (" (default)" if p == default else "") for p in cols)
           + f" | {RF} | default − RF |", "|" + "---|" * (len(cols) + 4)]
    for f in folds:
        rf = f.scores[RF]
        for w in f.weights:
            d = f.scores[key(w, default)]
            out.append(f"| {f.fold} | {w.label} | " + " | ".join(mean_sd(f.scores[key(w, p)].per_box()) for p in cols)
                       + f" | {mean_sd(rf.per_box())} | {d.mean() - rf.mean():+.2f} |")
    return out


def targets(folds: list[Fold], default: str, split: str) -> list[str]:
    rows = [(f.fold, w, f.scores[key(w, default)].mean(), f.scores[RF].mean()) for f in folds for w in f.weights]
    lodo = [r for r in rows if r[1].lodo]
    gap = ", ".join(f"{fold} · {w.strategy} {d - r:+.2f}" for fold, w, d, r in lodo)
    isbi = [(fold, w, d, r) for fold, w, d, r in lodo if fold == "isbi2012_membrane"]

    def verdict(ok: bool, n: int, none: str = "no LODO fold in this run") -> str:
        return none if not n else ("**met**" if ok else "**not met**")

    out = [f"- every LODO fold ≥ RF + 3 (default path `{default}`): "
           f"{verdict(all(d - r >= 3 for _, _, d, r in lodo), len(lodo))} ({gap or '—'})",
           f"- default path never below RF on any fold: {verdict(all(d >= r for _, _, d, r in lodo), len(lodo))}",
           f"- ISBI fold ≥ 81.3: {verdict(all(d >= 81.3 for *_, d, _ in isbi), len(isbi), 'no LODO ISBI fold run')}"
           + (f" ({', '.join(f'{w.strategy} {d:.2f}' for _, w, d, _ in isbi)})" if isbi else "")]
    skipped = [f"{fold} · {w.strategy}" for fold, w, *_ in rows if not w.lodo]
    if skipped:
        out.append(f"- **NOT LODO, not counted above:** {', '.join(skipped)}")
    if split != "test":
        out.append(f"- scored on the **{split}** split: the targets are for the test split")
    return out


def strategies(folds: list[Fold], default: str) -> list[str]:
    """Strategy × fold: Dice of the default path, and the run's CPU seconds, steps and wall seconds (its own,
    then with its init runs)."""
    if all(len(f.weights) < 2 for f in folds):
        return ["(one weights file per fold: nothing to compare)"]
    names = list(dict.fromkeys(w.strategy for f in folds for w in f.weights))
    out = ["| strategy | " + " | ".join(f.fold for f in folds) + " |", "|" + "---|" * (len(folds) + 1)]
    for s in names:
        cells = []
        for f in folds:
            w = next((w for w in f.weights if w.strategy == s), None)
            chain = card_chain(w.card) if w else []
            if not chain:
                cells.append("—")
                continue
            c, walls = chain[0], [c.get("wall_seconds") or 0 for c in chain]
            cpu = f"{c['cpu_seconds']:.0f} CPU s, {c.get('steps_done')} steps; " if "cpu_seconds" in c else ""
            cells.append(f"{f.scores[key(w, default)].mean():.2f} ({cpu}{walls[0]:.0f} s wall; {sum(walls):.0f} s "
                         "with init runs)")
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    return out


def figure_shown(prompt) -> bool | None:
    """Whether the user is shown a self-check figure for this prompt (engine: prompt.estimate.estimate_shown); None
    with a checkout that has no such rule."""
    try:
        from napari_fewcell.engine.prompt.estimate import estimate_shown
    except ImportError:
        return None
    return estimate_shown(prompt.path, prompt.check, prompt.box_labels, prompt.unchecked) is not None


def self_check(f: Fold, w: Weights, paths) -> list[str]:
    """Per box: each path's estimate (prompt.check of the runs on a fixed path) beside the Dice it got, and the
    estimate of the path auto chose beside what auto got: on that path's row when they are the same, else on a row
    of its own (path `auto`: e.g. a sparse box's balanced attention); how often auto chose the best."""
    got = {p: f.scores[key(w, p)].per_box() for p in paths}
    infos = [{} for _ in f.boxes]
    for p in [p for p in paths if p != "auto"]:
        for b, info in enumerate(f.scores[key(w, p)].info):
            infos[b].update(info["check"])
    autos = f.scores[key(w, "auto")].info if "auto" in paths else [None] * len(f.boxes)
    if not any(infos) and not any(a and a["check"] for a in autos):
        return ["No self-check estimates: this checkout's prompts carry no `check`."]
    scale = 100.0 if max(v for i in [*infos, *(a["check"] for a in autos if a)] for v in i.values()) <= 1.0 else 1.0
    out = [f"Estimates {'× 100 (the engine gives fractions)' if scale > 1 else 'as the engine gives them'}; "
           "*no figure shown*: the user is told why instead of a number (engine: estimate_shown).", "",
           "| box | path | estimate | Dice got | estimate − got | auto |", "|---|---|---|---|---|---|"]
    errors, regret = {}, []
    for b, est in enumerate(infos):
        auto = autos[b]
        if auto is not None and len(got) > 1:  # what auto got, against the best of the other paths scored
            regret.append(max(got[p][b] for p in got if p != "auto") - got["auto"][b])
        mark = "" if auto is None else f"chose {auto['path']}, got {got['auto'][b]:.2f}" + (
            "; no figure shown" if auto.get("shown") is False else "")
        if auto is not None and not auto["check"]:  # no part of the box could be scored (engine: BoxData.fair)
            out.append(f"| {b} | {auto['path']} | no estimate | {got['auto'][b]:.2f} | | {mark} |")
        own = auto is not None and auto["path"] in auto["check"] and (auto["path"] not in est or not np.isclose(
            est[auto["path"]], auto["check"][auto["path"]]) or got[auto["path"]][b] != got["auto"][b])
        for p, e in est.items():
            if p in got:
                errors.setdefault(p, []).append(e * scale - got[p][b])
                here = auto is not None and p == auto["path"] and p in auto["check"] and not own
                out.append(f"| {b} | {p} | {e * scale:.2f} | {got[p][b]:.2f} | {e * scale - got[p][b]:+.2f} | "
                           f"{mark if here else ''} |")
        if own:
            e = auto["check"][auto["path"]] * scale
            errors.setdefault("auto", []).append(e - got["auto"][b])
            out.append(f"| {b} | auto | {e:.2f} | {got['auto'][b]:.2f} | {e - got['auto'][b]:+.2f} | {mark} |")
    out += ["", "- mean |estimate − got| per path: "
            + ", ".join(f"{p} {np.mean(np.abs(e)):.2f}" for p, e in errors.items())]
    if regret:
        out.append(f"- auto got the best path's Dice on {sum(r <= 0 for r in regret)}/{len(regret)} boxes; mean "
                   f"loss against the best path {np.mean(regret):.2f} points")
    return out


def fold_section(f: Fold, paths) -> list[str]:
    methods = list(f.scores)
    out = [f"## {f.fold}: `{f.ds.name}/{f.ds.folder}`, {len(f.boxes)} boxes from train, {len(f.ids)} scored images "
           f"({', '.join(f.ids)})", "", "| box | source | y | x | fg % | " + " | ".join(methods) + " |",
           "|" + "---|" * (5 + len(methods))]
    for b, (src, y, x) in enumerate(f.boxes):
        share = 100 * f.ds.labels[src][y : y + BOX, x : x + BOX].mean()
        out.append(f"| {b} | {src} | {y} | {x} | {share:.0f} | "
                   + " | ".join(f"{f.scores[m].per_box()[b]:.2f}" for m in methods) + " |")
    out += ["", "| method | Dice % (mean ± sd over boxes) | worst box | fg Dice % | prompt s (once per prompt) "
            "| segment s / image (median) |", "|---|---|---|---|---|---|"]
    for m, sc in f.scores.items():
        out.append(f"| {m} | {mean_sd(sc.per_box())} | {min(sc.per_box()):.2f} | {np.mean(sc.fg):.2f} "
                   f"| {np.mean(sc.prep):.2f} | {np.median(sc.secs):.3f} |")
    for w in f.weights:
        out += ["", f"### {f.fold}: self-check, {w.label}", "", *self_check(f, w, paths)]
    return out + (["", f"### {f.fold}: end to end", "", *f.e2e, ""] if f.e2e else [""])


def fold_parser(doc: str, weights_help: str, seen_help: str, folds=FOLDS) -> argparse.ArgumentParser:
    """The options of a leave-one-out benchmark: --data, --folds, --weights, --allow-seen."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--folds", nargs="+", metavar="FOLD", help=f"SET or SET:FOLDER (default: {' '.join(folds)})")
    ap.add_argument("--weights", action="append", default=[], metavar="FOLD[@STRATEGY]=PATH", help=weights_help)
    ap.add_argument("--allow-seen", action="store_true", help=seen_help)
    return ap


def parse_args() -> argparse.Namespace:
    ap = fold_parser(__doc__, "weights pre-trained without FOLD (repeatable: several strategies per fold)",
                     "score weights that saw their fold (labelled NOT LODO); folds without --weights get the "
                     "shipped weights")
    ap.add_argument("--boxes", type=int, default=4, help="seeded 64×64 prompt boxes per fold")
    ap.add_argument("--max-test", type=int, default=8, help="score the first N images of the split")
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="val: score train images no box was cut from (for choosing defaults)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", nargs="+", choices=ADAPT, help="adapt paths to score (default: all)")
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the CLI-vs-RF timing")
    ap.add_argument("--out", help="default benchmarks/results/generalise[_quick].md")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 fold (dsb2018_he), 2 boxes, 2 images, --allow-seen")
    ap.add_argument("--note", action="append", default=[], help="a line for the report header (repeatable)")
    args = ap.parse_args()
    if min(args.boxes, args.max_test, args.threads) < 1:
        ap.error("--boxes, --max-test and --threads must be at least 1")
    args.folds = args.folds or (["dsb2018_he"] if args.quick else list(FOLDS))
    if args.quick:
        args.folds, args.boxes, args.max_test, args.allow_seen = args.folds[:1], 2, 2, True
    args.out = args.out or f"benchmarks/results/generalise{'_quick' if args.quick else ''}.md"
    check_folds(ap, args)
    return args


def check_folds(ap: argparse.ArgumentParser, args) -> None:
    """An argparse error for a fold whose label folder is missing under --data."""
    for fold in args.folds:
        set_name, folder = split_name(fold)
        if not (Path(args.data) / set_name / (folder or "labels")).is_dir():
            ap.error(f"fold {fold}: no folder {Path(args.data) / set_name / (folder or 'labels')}")


def main() -> None:
    args = parse_args()
    weights = parse_weights(args)  # refuses weights that saw their fold before any work
    set_threads(args.threads)
    paths, default, has_adapt = adapt_paths()
    paths = [p for p in paths if p in (args.paths or paths)] or paths
    if default not in paths:
        sys.exit(f"bench_generalise: error: --paths must include the default path {default}")
    rf, load = RFBaseline(args.threads), [os.getloadavg()[0]]
    folds = []
    for n, fold in enumerate(args.folds):
        log(f"fold {n + 1}/{len(args.folds)}: {fold}")
        folds.append(run_fold(args, fold, weights[fold], paths, default, has_adapt, rf))
    load.append(os.getloadavg()[0])
    split = ("the first test ids" if args.split == "test" else "train images no box was cut from (val)")
    rep = [
        *report_header("napari-fewcell generalisation benchmark (leave one data set out)", args.quick,
                       libs=("sklearn", "skimage")),
        f"- scored split: **{args.split}** — {split}, at most {args.max_test} per fold; {args.boxes} seeded "
        f"{BOX}×{BOX} boxes per fold from its train images (5–95 % foreground), the same for every method",
        adapt_line(paths, default, has_adapt),
        f"- `fewcell segment --adapt`: {'given' if cli_has_adapt() else 'not in this checkout, so omitted'}",
        *weights_lines(weights), *(f"- note: {n}" for n in args.note),
        "- metric: per scored image, mean of foreground and background Dice %; averaged over the images, then "
        "over boxes (mean ± sd over boxes, worst box); fg Dice = foreground Dice % alone",
        "- RF baseline (ilastik-style): `multiscale_basic_features` (intensity, edges, texture, sigma 1–16) of the "
        "prompt image, 100 trees fitted on the box's 4,096 pixels",
        f"- CPU load (1-min average) at start {load[0]:.2f}, at end {load[1]:.2f}: the times of a run that shared "
        "the CPU are not final",
        "", "## Summary: Dice % (mean ± sd over boxes)", "", *summary(folds, paths, default), "",
        "### Targets", "", *targets(folds, default, args.split), "",
        f"## Strategies: Dice % of `{default}` (pre-training CPU and wall seconds)", "",
        *strategies(folds, default), "",
        *[line for f in folds for line in fold_section(f, paths)],
    ]
    finish_report(rep, args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
