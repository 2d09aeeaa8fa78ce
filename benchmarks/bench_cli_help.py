#!/usr/bin/env python
"""How long `fewcell VERB --help` takes in a fresh process (issue 23: the parser reads the parameter dataclasses, which
import no torch), for this checkout or another one's ``src/`` (``--src``, e.g. an older commit checked out beside it),
and whether torch was imported. Run it alone on the machine.

    python benchmarks/bench_cli_help.py --out benchmarks/results/cli_help.md [--src OTHER/src --label before]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import finish_report, report_header

SRC = Path(__file__).resolve().parents[1] / "src"
VERBS = ("segment", "pseudolabel", "fit", "suggest")
PROBE = "import runpy, sys; sys.argv = ['fewcell', *sys.argv[1:]]\n" \
        "try:\n    runpy.run_module('napari_fewcell.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n" \
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)"


def one(src: str, verb: str) -> tuple[float, bool]:
    env = {**os.environ, "PYTHONPATH": src}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, verb, "--help"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if "TORCH" not in done.stderr:
        sys.exit(f"`fewcell {verb} --help` failed:\n{done.stderr[-2000:]}")
    return wall, "TORCH True" in done.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", action="append", default=[], metavar="PATH", help="a checkout's src/ (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="a name for each --src")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sources = a.src or [str(SRC)]
    labels = a.label or [str(s) for s in sources]
    rows = ["", "| source | verb | seconds (median of runs) | min | max | torch imported |",
            "|---|---|---|---|---|---|"]
    for src, label in zip(sources, labels):
        for verb in VERBS:
            runs = [one(src, verb) for _ in range(a.runs)]
            secs = [s for s, _ in runs]
            rows.append(f"| {label} | `{verb} --help` | {statistics.median(secs):.2f} | {min(secs):.2f} | "
                        f"{max(secs):.2f} | {'yes' if any(t for _, t in runs) else 'no'} |")
    rep = report_header("`fewcell VERB --help`, a fresh process each", False)
    rep += [f"- {a.runs} runs in a row per verb and source; Python start-up included", *rows]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
