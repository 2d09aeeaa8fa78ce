#!/usr/bin/env python
"""How far the self-check's estimate (inside the box) is from the Dice the whole image got: read from the
self-check tables of bench_generalise.py reports (leave-one-data-set-out weights; every box, every path), per path
and for the path *auto* chose (the number a user is shown). The product's sentence quotes the chosen path's mean and
largest error of the test-split report (engine/prompt/adapt.py, CHECK_ERROR).

    python benchmarks/check_error.py benchmarks/results/generalise_test_final.md [more reports] \
        --out benchmarks/results/check_error.md [--less 0.05]
"""
from __future__ import annotations

import argparse
import re

import numpy as np
from common import write_report

FOLD = re.compile(r"#+ (\S+): self-check, (.+)$")
ROW = re.compile(r"\| (\d+) \| (\w+) \| ([\d.]+) \| ([\d.]+) \| [-+\d.]+ \| (.*)\|$")
UNCHECKED = re.compile(r"\| \d+ \| \w+ \| no estimate \|")  #: a box the self-check could not score


def unchecked(path: str) -> int:
    """How many boxes of a report's self-check tables got no estimate (the user is told so instead of a number)."""
    return sum(bool(UNCHECKED.match(line)) for line in open(path, encoding="utf-8"))


def pairs(path: str) -> list[dict]:
    """Every (fold, weights, box, path, estimate, got, chosen) row of a report's self-check tables."""
    out, fold = [], None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if m := FOLD.match(line):
            fold = (m.group(1), m.group(2))
        elif fold and (m := ROW.match(line)):
            out.append({"fold": fold[0], "weights": fold[1], "box": int(m.group(1)), "path": m.group(2),
                        "estimate": float(m.group(3)) / 100, "got": float(m.group(4)) / 100,
                        "chosen": "chose it" in m.group(5)})
        elif line.startswith("#"):
            fold = None
    return out


def replayed(rows: list[dict]) -> list[dict]:
    """Per box, the row of the path the engine's ``choose`` takes today among auto's candidates (the report's own
    choice may predate a change of the rule)."""
    from napari_fewcell.engine.prompt.adapt import AUTO_PATHS, choose

    boxes: dict = {}
    for r in rows:
        if r["path"] in AUTO_PATHS:
            boxes.setdefault((r["fold"], r["weights"], r["box"]), {})[r["path"]] = r
    return [b[choose({p: r["estimate"] for p, r in b.items()})] for b in boxes.values()]


def stats(rows: list[dict]) -> str:
    e = np.array([r["estimate"] - r["got"] for r in rows])
    folds = len({r["fold"] for r in rows})
    return (f"| {len(rows)} | {folds} | {np.abs(e).mean():.3f} | {np.abs(e).max():.3f} | {e.mean():+.3f} | "
            f"{np.mean(np.abs(e) > 0.15) * 100:.0f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--less", type=float, default=0.0, help="take this off every estimate, clipped at 0 (a report "
                    "made before the engine took off adapt.CHECK_BIAS: what it would have shown)")
    args = ap.parse_args()
    lines = ["# Self-check estimate against whole-image Dice (leave one data set out)", "",
             "Estimate: the self-check inside the box (mean per-class Dice, fraction); got: the mean per-class "
             "Dice of the scored images of the fold. Error = estimate − got.", ""]
    if args.less:
        lines += [f"Every estimate of the reports less {args.less:g} (clipped at 0).", ""]
    for report in args.reports:
        rows = [{**r, "estimate": max(0.0, r["estimate"] - args.less)} for r in pairs(report)]
        lines += [f"## `{report}`", "", "| estimate of | boxes × weights | folds | mean \\|error\\| | max \\|error\\| "
                  "| mean error (+: optimistic) | share > 0.15 |", "|---|---|---|---|---|---|---|"]
        groups = {"the path auto chose (what a user is shown)": [r for r in rows if r["chosen"]],
                  "the path today's auto chooses (replayed: engine/prompt/adapt.py, choose)": replayed(rows)}
        paths = dict.fromkeys(r["path"] for r in rows)
        groups.update({f"path {p}": [r for r in rows if r["path"] == p] for p in paths})
        for name, g in groups.items():
            if g:
                lines.append(f"| {name} " + stats(g))
        if n := unchecked(report):
            lines.append(f"\n{n} box(es) without an estimate (the check could score no part of the box; the user "
                         "is told so) are not in the rows above.")
        lines.append("")
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
