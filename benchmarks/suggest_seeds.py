#!/usr/bin/env python
"""The suggestion loop over several seeds, against random tiles: reads bench_suggest.py reports (the loop of one score
at one seed each, and the reports that hold random's draws) and writes a table of the mean over seeds at 1, 3 and 5
tiles beside random's mean ± sd, with issue 21's test (≥ random's mean + 1 sd at 3 and 5 tiles; never below its mean).

    python suggest_seeds.py --score coverage --random results/suggest_test_isbi_dsb_coverage.md ... \
        --seeds results/suggest_test_isbi_dsb_coverage.md ... results/suggest_test_seed1.md \
        results/suggest_test_seed2.md --out results/suggest_test_seeds.md
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from common import finish_report, report_header

BUDGETS = (1, 3, 5)


def rows(text: str, what: str) -> dict[str, list[str]]:
    """{set: [cell at 1, 3, 5 tiles]} of the report's rows whose score column is ``what``."""
    out = {}
    for m in re.finditer(rf"^\| (\S+) \| [^|]+ \| {re.escape(what)} \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M):
        out[m[1]] = [m[2].strip(), m[3].strip(), m[4].strip()]
    return out


def seed_of(text: str) -> int:
    m = re.search(r"--seed (\d+)", text)
    return int(m[1]) if m else 0


def collect(random_reports, seed_reports, score: str):
    """({set: [(mean, sd) per budget]}, {set: {seed: [Dice per budget]}})."""
    random, loops = {}, {}
    for path in random_reports:
        for name, cells in rows(Path(path).read_text(), "random (10 draws)").items():
            if "nan" not in cells[0]:
                random[name] = [tuple(float(v) for v in c.split(" ± ")) for c in cells]
    for path in seed_reports:
        text = Path(path).read_text()
        for name, cells in rows(text, f"{score} (diverse)").items():
            loops.setdefault(name, {})[seed_of(text)] = [float(c) for c in cells]
    return random, loops


def table(random: dict, loops: dict) -> list[str]:
    seeds = sorted({s for by_seed in loops.values() for s in by_seed})
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [f"| set | tiles | random mean ± sd | {head} | mean over seeds | − random's mean | ≥ mean + 1 sd |",
             "|---|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    met = total = 0
    for name, by_seed in loops.items():
        if name not in random or sorted(by_seed) != seeds:
            continue
        for k, budget in enumerate(BUDGETS):
            (m, sd), vals = random[name][k], [by_seed[s][k] for s in seeds]
            mean = float(np.mean(vals))
            ok = mean >= m + sd
            if budget in (3, 5):
                met, total = met + ok, total + 1
            lines.append(f"| {name} | {budget} | {m:.1f} ± {sd:.1f} | " + " | ".join(f"{v:.1f}" for v in vals)
                         + f" | {mean:.1f} | {mean - m:+.1f} | {'yes' if ok else 'no'} |")
    return lines + ["", f"At 3 and 5 tiles the mean over seeds is ≥ random's mean + 1 sd on {met} of {total} cells."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score", default="coverage")
    ap.add_argument("--random", nargs="+", required=True, help="reports with random's 10 draws")
    ap.add_argument("--seeds", nargs="+", required=True, help="loop reports, one seed each (--seed in the command)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    random, loops = collect(a.random, a.seeds, a.score)
    rep = report_header(f"The suggestion loop ({a.score}) over seeds, against random tiles", False) + [
        "- from: " + ", ".join(f"`{p}`" for p in dict.fromkeys([*a.random, *a.seeds])),
        "- foreground Dice % of the perceptron refitted on the accepted tiles, mean over the test images; random's "
        "10 draws from the seed-0 reports", "", *table(random, loops), ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
