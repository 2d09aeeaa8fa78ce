#!/usr/bin/env python
"""What each rule for choosing a prompt's adapt path would have scored, replayed from a bench_generalise report.

The report's self-check tables give, per fold and box, each path's estimate and the Dice it got on the scored
images; a rule ("auto between these paths", or "always this path") picks one path per box from the estimates
alone (ties within 0.5 points go to the cheaper path, as the engine's ``choose`` does). Prints a Markdown table
of the mean over folds and each fold's difference from the RF baseline. Used to choose what ``auto`` chooses
between, on validation reports only.

    python benchmarks/studies/choice_rules.py benchmarks/results/generalise_val_forest.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import collections
import re

RULES = {"auto: none / forest / fuse": ("none", "forest", "fuse"), "auto: none / fuse": ("none", "fuse"),
         "always none": ("none",), "always forest": ("forest",), "always fuse": ("fuse",)}
ORDER = ("none", "forest", "fuse", "finetune")  # cheapest first


def read(report: str) -> tuple[dict, dict]:
    """({(fold · weights, box): {path: (estimate, got)}}, {fold · weights: RF mean})."""
    data = collections.defaultdict(dict)
    parts = re.split(r"### (\S+): self-check, (\S+)", report)[1:]
    for i in range(0, len(parts), 3):
        for m in re.finditer(r"^\| (\d+) \| (\w+) \| ([\d.]+|no estimate) \| ([\d.]+) \|", parts[i + 2], re.M):
            estimate = None if m[3] == "no estimate" else float(m[3])  # the check scored nothing: auto takes none
            data[(f"{parts[i]} · {parts[i + 1]}", int(m[1]))][m[2]] = (estimate, float(m[4]))
    rf = {f"{m[1]} · {m[2]}": float(m[3]) for m in
          re.finditer(r"^\| (\S+) \| (\S+) \|.*\| ([\d.]+) ± [\d.]+ \| [+-][\d.]+ \|$", report, re.M)}
    return data, rf


#: "auto: none / fuse" with the fused path's estimate lowered by this many points (it is the optimistic one)
HANDICAPS = (1.0, 2.0, 3.0, 5.0)


def replay(data: dict, paths, tie: float = 0.5, handicap: float = 0.0) -> dict[str, float]:
    got = collections.defaultdict(list)
    for (fold, _), d in data.items():
        est = {p: d[p][0] - (handicap if p == "fuse" else 0.0) for p in ORDER
               if p in paths and p in d and d[p][0] is not None}
        if not est:  # no estimate: auto takes attention alone (adapt.UNCHECKED)
            got[fold].append(d["none"][1])
            continue
        best = max(est.values())
        got[fold].append(d[next(p for p in est if est[p] >= best - tie)][1])
    return {f: sum(v) / len(v) for f, v in got.items()}


def main() -> None:
    data, rf = read(open(sys.argv[1]).read())
    folds = list(dict.fromkeys(f for f, _ in data))
    print("| rule | mean Dice % | worst fold − RF | " + " | ".join(f"{f} − RF" for f in folds) + " |")
    print("|---|---|---|" + "---|" * len(folds))
    rules = [(name, paths, 0.0) for name, paths in RULES.items()]
    rules += [(f"auto: none / fuse − {h:g}", ("none", "fuse"), h) for h in HANDICAPS]
    for name, paths, h in rules:
        if not any(set(paths) & set(d) for d in data.values()):
            continue  # a path the report did not measure
        r = replay(data, paths, handicap=h)
        diff = [r[f] - rf[f] for f in folds]
        print(f"| {name} | {sum(r.values()) / len(r):.2f} | {min(diff):+.2f} | "
              + " | ".join(f"{d:+.2f}" for d in diff) + " |")


if __name__ == "__main__":
    main()
