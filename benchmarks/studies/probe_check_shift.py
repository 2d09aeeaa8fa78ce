#!/usr/bin/env python
"""The self-check under a shift of the image (issue 20, items 4 and "auto against the best path"; a probe).

The self-check predicts each held-out quadrant of the box from the other three. Every pixel it scores is from the
prompt image, and a box's pixels are more alike than those of another image: the fused forest, which learns the
intensities of one image, reads well there and loses on other images (DSB fluorescence in-domain: 0.88 estimated,
86 got, against attention's 94.5). This probe scores the held-out quadrants as if they came from another image: the
quadrant's filters and embeddings are computed on a shifted copy of the box's region (a gamma curve, a blur, noise),
while every path learns from the unshifted pixels, as it does from the prompt image. A path that leans on the prompt
image's own intensities should lose more under the shift.

The variants ``edges 1`` and ``edges 2`` score the held-out pixels less those within 1 or 2 px of an edge between
classes. A second variant (``prior``) reweighs attention's held-out class probabilities to the whole prompt's class
balance (a class sparse in the box is rarer still among the three quadrants a held-out one is predicted from).

Each box's row also gives the prompt image's distance from the network's pre-training data, read from its BatchNorm
statistics (:func:`bn_shift`): would it tell where attention alone can be trusted?

It recomputes each box's check (the engine's, then each variant) and replays auto's choice with each box's whole-image
Dice read from an earlier report of the same boxes and code: a bench_generalise.py report (``--generalise``) or a
studies/study_shipped_default.py report (``--shipped``). Nothing in the engine changes.

    python studies/probe_check_shift.py --generalise results/check_pooled_val.md --data /work/shared/data \
        --out results/check_shift_prior_val.md
    python studies/probe_check_shift.py --shipped results/shipped_default_pooled12.md --data /work/shared/data \
        --out results/check_shift_prior_shipped.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import argparse
import dataclasses
import re
import shlex

import numpy as np
import torch
from choice_rules import read
from common import BOX, Dataset, finish_report, log, report_header, seeded_box, set_threads

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.prompt import adapt
from napari_fewcell.engine.prompt.filters import fit_forest, forest_proba

SHIFTS = {
    "gamma 0.67": lambda r, rng: np.clip(r, 0, 1) ** 0.67,
    "gamma 1.5": lambda r, rng: np.clip(r, 0, 1) ** 1.5,
    "blur 1": lambda r, rng: np.stack([_blur(c, 1.0) for c in r]),
    "noise 0.05": lambda r, rng: r + rng.normal(0, 0.05, r.shape[1:]).astype(r.dtype)[None],
}


def _blur(c, s):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(c, s)


def prior_check(box, loqo: np.ndarray) -> dict:
    """{"none": held-out Dice} of attention with each quadrant's class probabilities (``loqo``: the engine's held-out
    ones) reweighted by (the class's pixels in the whole prompt / its pixels among the keys the quadrant was predicted
    from): the final prompt's class balance, not that of three quadrants (a class sparse in the box is rarer still
    among three quadrants' keys)."""
    full = np.bincount(box.y[box.keyed], minlength=box.n_classes).astype(np.float64)
    probs = loqo.astype(np.float64)
    for q in np.unique(box.quad):
        seen = np.bincount(box.y[box.train_mask(q) & box.keyed], minlength=box.n_classes)
        probs[box.quad == q] *= full / np.maximum(seen, 1)
    return {"none": box.score(probs.argmax(1)), "fuse": None}


def near_edges(box, r: int) -> np.ndarray:
    """(M,) whether each labelled pixel lies within ``r`` px (Chebyshev) of a pixel of another class of its part."""
    from scipy import ndimage as ndi

    out = []
    for src, span in zip(box.sources, box.spans):
        lab = src.put(box.y[span].astype(np.int64), -1)
        size = 2 * r + 1
        hi, lo = ndi.maximum_filter(lab, size=size), ndi.minimum_filter(np.where(lab < 0, 10**6, lab), size=size)
        out.append(src.take((hi != lab) | (lo != lab)))
    return np.concatenate(out)


def edge_free_check(box, reuse, fused: np.ndarray, r: int) -> dict:
    """{path: held-out Dice} of attention and the fused path (``fused``: its held-out predictions) scored without the
    pixels within ``r`` px of an edge between classes (where a box's dense structure weighs more than in a whole
    image)."""
    from napari_fewcell.engine.prompt.annotated import mean_dice

    keep = box.fair & ~near_edges(box, r)
    out = {}
    for path, pred in (("none", reuse["loqo"].argmax(1)), ("fuse", fused)):
        out[path] = mean_dice(pred[keep], box.y[keep]) if keep.any() else None
    return out


def shifted_sources(box, shift) -> list:
    """The box's parts with every region shifted by ``shift`` (a value of :data:`SHIFTS`; seeded noise)."""
    rng = np.random.default_rng(0)
    return [dataclasses.replace(s, region=shift(s.region, rng).astype(np.float32)) for s in box.sources]


def shifted_check(model, box, params, reuse, shift) -> dict:
    """{path: held-out Dice} of attention alone and the fused path with the held-out quadrants shifted."""
    sources = shifted_sources(box, shift)
    emb2 = adapt.box_embeddings(model, sources)
    feats2 = adapt.box_features(sources)
    loqo2 = adapt.held_out_probs(box, queries=emb2)
    out = {"none": box.score(loqo2.argmax(1))}
    pred = np.zeros(len(box.y), np.int64)
    extra, extra2 = reuse["extra"], emb2.float().numpy() if reuse["extra"] is not None else None
    for q in np.unique(box.quad[box.fair]):
        train, test = box.train_mask(q) & box.taught, box.quad == q
        nested = adapt.held_out_probs(box, exclude=(q,))
        x_train = np.hstack([reuse["feats"][train], nested[train]])
        x_test = np.hstack([feats2[test], loqo2[test]])
        if extra is not None:
            x_train, x_test = np.hstack([x_train, extra[train]]), np.hstack([x_test, extra2[test]])
        forest = fit_forest(params.check_trees, x_train, box.y[train])
        pred[test] = forest_proba(forest, x_test, box.n_classes).argmax(1)
    out["fuse"] = box.score(pred)
    return out


RECORD: list = []  #: per checked box: {"engine": {path: estimate}, shift: {path: held-out Dice}}


def recording_check(original):
    def check(model, box, params, paths, known=None):
        est, reuse = yield from original(model, box, params, paths, known)
        row = {"engine": dict(est)}
        if est:
            for name, fn in SHIFTS.items():
                row[name] = shifted_check(model, box, params, reuse, fn)
            row["prior"] = prior_check(box, reuse["loqo"])
            fused = run(adapt.forest_check(box, reuse["feats"], reuse["loqo"], params.check_trees, reuse["extra"]))
            for r in EDGE_BANDS:
                row[f"edges {r}"] = edge_free_check(box, reuse, fused, r)
        RECORD.append(row)
        return est, reuse

    return check


@torch.inference_mode()
def bn_shift(model, image) -> float:
    """How far the prompt image is from the network's pre-training data: the mean over BatchNorm layers and channels
    of KL(N(m, v) ‖ N(μ, σ²)), (m, v) the channel's mean and variance over the image, (μ, σ²) its running
    statistics (the test-time adaptation literature's domain-shift measure)."""
    from napari_fewcell.engine.core.image import as_image2d, intensity_range, normalize

    arr = as_image2d(image)
    x = torch.from_numpy(normalize(arr, intensity_range(arr)))[None]
    kls = []

    def hook(mod, inputs, _out):
        t = inputs[0].float()
        m, v = t.mean((0, 2, 3)), t.var((0, 2, 3)) + mod.eps
        mu, var = mod.running_mean, mod.running_var + mod.eps
        kls.append(float((0.5 * ((m - mu) ** 2 / var + v / var - 1 - torch.log(v / var))).mean()))

    hooks = [mod.register_forward_hook(hook) for mod in model.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    try:
        model.eval().any_size(x)
    finally:
        for h in hooks:
            h.remove()
    return float(np.mean(kls))


def checks_of(model_path: str, ds: Dataset, boxes) -> list[dict]:
    from napari_fewcell.engine.nets.unet import load_model
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    model = load_model(model_path)
    out = []
    for src, y, x in boxes:
        seg = Segmenter(PromptParams(weights=model_path, device="cpu", adapt="auto"), model=model)
        RECORD.clear()
        seg.adapt(seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX)))
        out.append({**RECORD[-1], "bn_shift": bn_shift(model, ds.images[src])})
    return out


# ---- the boxes and Dice of an earlier report ---------------------------------------------------------------------
def command_args(report: str) -> list[str]:
    line = re.search(r"^- command: `python (.*)`$", report, re.M)[1]
    return shlex.split(line)[1:]


def option(argv: list[str], name: str) -> list[str]:
    """The values after ``name`` (up to the next option); every occurrence's, in order."""
    out = []
    for i, a in enumerate(argv):
        if a == name:
            out += list(_until_option(argv[i + 1:]))
    return out


def _until_option(rest):
    for v in rest:
        if v.startswith("--"):
            return
        yield v


def generalise_cases(report: str, data: str) -> list[dict]:
    """Per fold · weights: the boxes, their checks under every shift, and each path's Dice from the report."""
    from napari_fewcell.engine.training.datasets import split_name

    argv, (got, rf) = command_args(report), read(report)
    boxes_n = int(option(argv, "--boxes")[0])
    cases = []
    for spec in option(argv, "--weights"):
        fold_strategy, _, path = spec.partition("=")
        fold, _, strategy = fold_strategy.partition("@")
        set_name, folder = split_name(fold)
        ds = Dataset(data, set_name, folder=folder or "labels")
        boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(boxes_n)]
        name = f"{fold} · {strategy}"
        log(f"{name}: checking {boxes_n} boxes")
        checks = checks_of(str(Path(path)), ds, boxes)
        # a box with no estimate has only the path auto took (attention alone) in the report
        dice = [{p: v[1] for p, v in got[(name, b)].items() if p in ("none", "fuse")} for b in range(boxes_n)]
        reported = [{p: v[0] for p, v in got[(name, b)].items() if p in ("none", "fuse")} for b in range(boxes_n)]
        cases.append({"name": name, "checks": checks, "dice": dice, "reported": reported, "rf": rf.get(name)})
    return cases


def shipped_cases(report: str, data: str) -> list[dict]:
    from bench_prompt import pick_box
    from study_shipped_default import SETS

    from napari_fewcell.engine.nets.unet import default_weights_path

    argv = command_args(report)
    boxes_n = int((option(argv, "--boxes") or ["6"])[0])
    cases = []
    for name, (lo, hi) in SETS.items():
        ds = Dataset(data, name)
        boxes = [pick_box(s, ds, lo, hi) for s in range(boxes_n)]
        row = re.search(rf"^\| {name} \| Dice per box \(none / fuse\) \| \| (.*) \|$", report, re.M)[1]
        dice = [dict(zip(("none", "fuse"), map(float, pair.split(" / ")))) for pair in row.split(", ")]
        row = re.search(rf"^\| {name} \| checks \(none / fuse\) \| \| (.*) \|$", report, re.M)[1]
        reported = [dict(zip(("none", "fuse"), (100 * float(v) for v in pair.split(" / "))))
                    if pair != "no estimate" else {} for pair in row.split(", ")]
        log(f"{name}: checking {boxes_n} boxes")
        checks = checks_of(str(default_weights_path()), ds, boxes)
        cases.append({"name": name, "checks": checks, "dice": dice, "reported": reported, "rf": None})
    return cases


# ---- the rules replayed --------------------------------------------------------------------------------------------
def rule_estimates(row: dict, rule: str) -> dict:
    """{path: estimate} that auto compares under ``rule`` ({} when the engine's check had none)."""
    eng = row["engine"]
    if not eng:
        return {}
    if rule == "prior":  # attention's check at the final prompt's class balance; the fused path's as the engine's
        return {"none": max(0.0, row["prior"]["none"] - adapt.CHECK_BIAS), "fuse": eng["fuse"]}
    if rule.startswith("edges") and None not in row[rule].values():
        return dict(row[rule])
    if rule.startswith("edges"):
        return dict(eng)
    names = list(SHIFTS) if rule in ("all shifts", "engine + all shifts") else [rule.removeprefix("engine + ")]
    names = [] if rule == "engine" else names
    out = {}
    for p in ("none", "fuse"):
        vals = [row[n][p] for n in names if row[n][p] is not None]
        shifted = float(np.mean(vals)) if vals else eng[p] + adapt.CHECK_BIAS
        out[p] = eng[p] if rule == "engine" else shifted if not rule.startswith("engine + ") else (
            (eng[p] + adapt.CHECK_BIAS + shifted) / 2)
    return out


EDGE_BANDS = (1, 2)  #: px around edges between classes left out of the ``edges R`` checks
RULES = ["engine", "prior", *(f"edges {r}" for r in EDGE_BANDS), *SHIFTS, "all shifts",
         *(f"engine + {n}" for n in SHIFTS), "engine + all shifts"]
FINE = ("engine", "prior", *(f"edges {r}" for r in EDGE_BANDS))  #: rules replayed at more handicaps


def replay(cases: list[dict], rule: str, handicap: float) -> list[float]:
    """Per case: the mean Dice of the path auto would choose on each box."""
    out = []
    for c in cases:
        got = [d[adapt.choose(rule_estimates(row, rule), {"fuse": handicap})] for row, d in zip(c["checks"], c["dice"])]
        out.append(float(np.mean(got)))
    return out


def table(cases: list[dict]) -> list[str]:
    names = [c["name"] for c in cases]
    lines = ["| rule | handicap | mean | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for which, pick in (("attention alone", "none"), ("fused path", "fuse")):
        v = [float(np.mean([d[pick] for d in c["dice"] if pick in d])) for c in cases]
        lines.append(f"| {which} (boxes with its Dice) | | {np.mean(v):.2f} | "
                     + " | ".join(f"{x:.2f}" for x in v) + " |")
    v = [float(np.mean([max(d.values()) for d in c["dice"]])) for c in cases]
    lines.append("| the better path of each box (oracle) | | " + f"{np.mean(v):.2f} | "
                 + " | ".join(f"{x:.2f}" for x in v) + " |")
    for rule in RULES:
        for h in (0.0, 0.01, 0.02, adapt.HANDICAP["fuse"], 0.05) if rule in FINE else (0.0, adapt.HANDICAP["fuse"]):
            v = replay(cases, rule, h)
            lines.append(f"| {rule} | {h:g} | {np.mean(v):.2f} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    return lines


def detail(cases: list[dict]) -> list[str]:
    names = [*SHIFTS, "prior", *(f"edges {r}" for r in EDGE_BANDS)]
    lines = ["| case | box | BatchNorm shift | Dice none / fuse | engine none / fuse (report) | "
             + " | ".join(f"{n} none / fuse" for n in names) + " |", "|---|---|---|---|---|" + "---|" * len(names)]

    def pair(d, scale=1.0):
        return " / ".join("–" if d.get(p) is None else f"{scale * d[p]:.1f}" for p in ("none", "fuse"))

    for c in cases:
        for b, (row, d, rep) in enumerate(zip(c["checks"], c["dice"], c["reported"])):
            shifts = " | ".join(pair(row[n], 100) if row["engine"] else "–" for n in names)
            lines.append(f"| {c['name']} | {b} | {row['bn_shift']:.3f} | {pair(d)} | {pair(row['engine'], 100)} "
                         f"({pair(rep)}) | {shifts} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--generalise", help="a bench_generalise.py report with self-check tables")
    src.add_argument("--shipped", help="a studies/study_shipped_default.py report")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(a.threads)
    adapt.self_check = recording_check(adapt.self_check)
    path = a.generalise or a.shipped
    report = Path(path).read_text()
    cases = generalise_cases(report, a.data) if a.generalise else shipped_cases(report, a.data)
    rep = report_header("The self-check under a shift of the image (a probe)", False) + [
        f"- boxes and each path's whole-image Dice from `{path}`; the checks recomputed here ('engine' must match "
        "the report's estimates)", "- a shift's check: the held-out quadrants' filters and embeddings computed on "
        "the shifted region; every path learns from the unshifted pixels; estimates without adapt.CHECK_BIAS",
        "- rules: auto (adapt.choose) on the engine's estimates, on a shift's, on the mean of the shifts', or on the "
        "mean of the engine's and the shift's; handicap = what the fused path's estimate is lowered by", "",
        "## Auto's Dice % under each rule (mean over boxes, per case)", "", *table(cases), "",
        "## Per box (× 100)", "", *detail(cases), ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
