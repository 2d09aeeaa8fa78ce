#!/usr/bin/env python
"""How far the self-check's estimate (inside the box) is from the Dice the whole image got: read from the
self-check tables of bench_generalise.py reports (leave-one-data-set-out weights; every box, every path), per path
and for the path *auto* chose, against what auto got (the "chose …, got X" mark: a sparse box's balanced attention
is not the plain attention of the `none` rows), with and without the boxes where the user is shown no figure. The
product's sentence quotes the mean and largest error of the figures shown, test-split report
(engine/prompt/estimate.py, CHECK_ERROR).

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
CHOSEN = re.compile(r"chose (?:it|\w+), got ([\d.]+)")  #: auto's mark: what auto got (old reports: "chose it")


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
            chosen = CHOSEN.search(m.group(5))
            out.append({"fold": fold[0], "weights": fold[1], "box": int(m.group(1)), "path": m.group(2),
                        "estimate": float(m.group(3)) / 100, "got": float(m.group(4)) / 100,
                        "chosen": chosen is not None, "auto_got": float(chosen.group(1)) / 100 if chosen else None,
                        "shown": "no figure shown" not in m.group(5)})
        elif line.startswith("#"):
            fold = None
    return out


def replayed(rows: list[dict]) -> list[dict]:
    """Per box, the row of the path the engine's ``choose`` takes today among auto's candidates (the report's own
    choice may predate a change of the rule); a box with a row of auto's own (a rule outside ``choose``: the sparse
    box's balanced attention) keeps it."""
    from napari_fewcell.engine.prompt.adapt import AUTO_PATHS, choose

    boxes: dict = {}
    for r in rows:
        if r["path"] in (*AUTO_PATHS, "auto"):
            boxes.setdefault((r["fold"], r["weights"], r["box"]), {})[r["path"]] = r
    return [b["auto"] if "auto" in b else b[choose({p: r["estimate"] for p, r in b.items()})] for b in boxes.values()]


def as_got_by_auto(rows: list[dict]) -> list[dict]:
    """The chosen rows with ``got`` = what auto got."""
    return [{**r, "got": r["auto_got"]} for r in rows if r["chosen"]]


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
        chosen = as_got_by_auto(rows)
        groups = {"**the figure a user is shown** (the path auto chose, where a figure is shown)":
                  [r for r in chosen if r["shown"]],
                  "the path auto chose, every estimate (no figure shown or not)": chosen,
                  "the path today's auto chooses (replayed: engine/prompt/adapt.py, choose)": replayed(rows)}
        paths = dict.fromkeys(r["path"] for r in rows)
        groups.update({f"path {p}": [r for r in rows if r["path"] == p] for p in paths})
        for name, g in groups.items():
            if g:
                lines.append(f"| {name} " + stats(g))
        if n := sum(not r["shown"] for r in chosen):
            lines.append(f"\n{n} box(es) with an estimate the user is not shown (a class under adapt.SPARSE of the "
                         "box: the user is told why instead).")
        if n := unchecked(report):
            lines.append(f"\n{n} box(es) without an estimate (the check could score no part of the box; the user "
                         "is told so) are not in the rows above.")
        lines.append("")
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
