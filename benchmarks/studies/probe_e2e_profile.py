#!/usr/bin/env python
"""Where the time of a fresh `fewcell segment` goes (issue 20: end to end ≤ 1.3× the RF command; short on the folds of
small images). Runs the CLI in a fresh process per repeat, with timers around the steps of the default path (imports,
the prompt network's passes, the forests' filters, fits and predictions, the self-check's attention), beside the RF
command (benchmarks/rf_cli.py) on the same box and images, as bench_generalise's end-to-end rows do. The timed process
ends the usual way (its teardown is in the first row).

    python studies/probe_e2e_profile.py --data /work/shared/data --set isbi2014_cervical_synth_cells \
        --source 036 --box 175 347 --images 001 003 005 007 009 011 --out results/e2e_profile_cervical.md

``--exit``: instead, the plain command as a user runs it (``python -m napari_fewcell.cli segment``) with the usual
exit (``FEWCELL_SLOW_EXIT=1``) and without the interpreter's teardown (the default), alternately, and the RF command
after each pair: the medians of ``--repeats``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import tifffile
from common import BOX, finish_report, log, report_header

SHIPPED = "../src/napari_fewcell/weights/fewcell_embed_v1.pt"
#: the steps timed, as (module, attribute, label)
STEPS = [("napari_fewcell.engine.prompt.segmenter", "Segmenter.embed", "the prompt network (every pass)"),
         ("napari_fewcell.engine.prompt.segmenter", "window_features", "filters of the images"),
         ("napari_fewcell.engine.prompt.segmenter", "forest_proba", "the forest on the images"),
         ("napari_fewcell.engine.prompt.adapt", "fit_forest", "the forests' fits (check + final)"),
         ("napari_fewcell.engine.prompt.adapt", "held_out_probs", "the check's held-out attention"),
         ("napari_fewcell.engine.prompt.adapt", "box_features", "filters of the box")]

CHILD = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
import napari_fewcell.cli as cli
from napari_fewcell.engine.prompt import adapt, segmenter  # noqa: F401 (what the verb imports anyway)
t1 = time.perf_counter()
acc = {}
def wrap(owner, name, label):
    f = getattr(owner, name)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            acc[label] = acc.get(label, 0.0) + time.perf_counter() - t
    setattr(owner, name, timed)
for mod, attr, label in json.loads(sys.argv[1]):
    owner = importlib.import_module(mod)
    *path, name = attr.split(".")
    for p in path:
        owner = getattr(owner, p)
    wrap(owner, name, label)
code = cli.main(sys.argv[3:])
t2 = time.perf_counter()
open(sys.argv[2], "w").write(json.dumps({"code": code, "import": t1 - t0, "main": t2 - t1, "steps": acc}))
"""


def med(values) -> float:
    return float(np.median(values))


def run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def exit_rows(a, common: list[str], env: dict, tmp: str) -> list[str]:
    """The report's rows of ``--exit``: the command with either exit and the RF command, median seconds."""
    times = {"usual exit (FEWCELL_SLOW_EXIT=1)": [], "without the teardown (the default)": [], "RF command": []}
    base = [sys.executable, "-m", "napari_fewcell.cli", "segment", *common, "--weights", a.weights, "--device", "cpu"]
    for r in range(a.repeats):
        slow, fast, rf = times.values()
        slow.append(run([*base, "--out", f"{tmp}/s{r}"], dict(env, FEWCELL_SLOW_EXIT="1")))
        fast.append(run([*base, "--out", f"{tmp}/f{r}"], env))
        rf.append(run([sys.executable, str(Path(__file__).parents[1] / "rf_cli.py"), *common, "--out", f"{tmp}/r{r}",
                       "--threads", str(a.threads)], env))
        log(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    rf_s = med(times.pop("RF command"))
    return ["| `fewcell segment`, the whole process | seconds (median) | ratio to the RF command |", "|---|---|---|",
            *(f"| {k} | {med(v):.2f} | {med(v) / rf_s:.2f} |" for k, v in times.items()),
            f"| the RF command | {rf_s:.2f} | 1 |", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--set", required=True)
    ap.add_argument("--source", required=True, help="the prompt image's id")
    ap.add_argument("--box", nargs=2, type=int, required=True, metavar=("Y", "X"))
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--weights", default=SHIPPED)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--exit", action="store_true", help="compare the usual exit with the default (no teardown)")
    a = ap.parse_args()
    import napari_fewcell

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(napari_fewcell.__file__).parents[1]), env.get("PYTHONPATH", "")])
    d = Path(a.data) / a.set
    y, x = a.box
    rows, rf = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tifffile.imwrite(f"{tmp}/lab.tif", tifffile.imread(d / "labels" / f"{a.source}.tif")[y : y + BOX, x : x + BOX])
        common = [*(str(d / "images" / f"{i}.tif") for i in a.images), "--prompt-image",
                  str(d / "images" / f"{a.source}.tif"), "--prompt-labels", f"{tmp}/lab.tif", "--box", str(y), str(x),
                  str(BOX), str(BOX)]
        if a.exit:
            rows = exit_rows(a, common, env, tmp)
            finish_report(report_header("A fresh `fewcell segment`: the usual exit or none", False) + [
                f"- {a.set}: prompt box ({y}, {x}) of {a.source}, {len(a.images)} images; weights `{a.weights}`; "
                f"default path; {a.threads} threads; {a.repeats} repeats, each a fresh process", "", *rows], a.out)
            return
        for r in range(a.repeats):
            wall = run([sys.executable, "-c", CHILD, json.dumps(STEPS), f"{tmp}/t.json", "segment", *common, "--out",
                        f"{tmp}/o{r}", "--weights", a.weights, "--device", "cpu"], env)
            rows.append({"wall": wall, **json.loads(Path(f"{tmp}/t.json").read_text())})
            rf.append(run([sys.executable, str(Path(__file__).parents[1] / "rf_cli.py"), *common, "--out",
                           f"{tmp}/r{r}", "--threads", str(a.threads)], env))
            log(f"repeat {r}: fewcell {wall:.2f} s, RF command {rf[-1]:.2f} s")
    labels = [label for *_, label in STEPS]
    steps = {k: med([r["steps"].get(k, 0.0) for r in rows]) for k in labels}
    fc, imp, main_s = med([r["wall"] for r in rows]), med([r["import"] for r in rows]), med([r["main"] for r in rows])
    rep = report_header("Where the time of a fresh `fewcell segment` goes", False) + [
        f"- {a.set}: prompt box ({y}, {x}) of {a.source}, {len(a.images)} images; weights `{a.weights}`; default "
        f"path; {a.threads} threads; median of {a.repeats} repeats, each a fresh process, the RF command after it", "",
        "| step | seconds |", "|---|---|", f"| `fewcell segment`, the whole process | {fc:.2f} |",
        f"| the RF command, the whole process | {med(rf):.2f} |", f"| **ratio** | **{fc / med(rf):.2f}** |",
        f"| Python start-up, the CLI's imports (torch among them) and the interpreter's exit | {fc - main_s:.2f} |",
        f"| of which the package's imports timed in-process | {imp:.2f} |",
        *(f"| {k} | {v:.2f} |" for k, v in steps.items()),
        f"| the rest of the verb (reading, attention, labels, writing, imports on first use) | "
        f"{main_s - sum(steps.values()):.2f} |", ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
