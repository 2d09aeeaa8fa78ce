#!/usr/bin/env python
"""Does what the image itself shows improve the self-check's estimate (issue 20, item 4)? Reads the lines of
``studies/probe_agreement.py`` (validation and test), takes per box the path *auto* chose, its estimate (the engine's:
held-out Dice less CHECK_BIAS) and the Dice it got (mean over the scored images), and fits by least squares on the
validation boxes a linear estimate from the engine's estimate and/or two measures that need no truth, averaged over the
scored images: the agreement of attention alone with the fused path, and the chosen path's mean winning probability.
Prints the mean and largest |error| of each on the validation boxes (in sample) and the test boxes (out of sample).

    python studies/fit_agreement.py results/agreement_val.jsonl results/agreement_test.jsonl
"""
from __future__ import annotations

import collections
import json
import sys

import numpy as np

SETS = (("estimate",), ("agreement",), ("confidence",), ("estimate", "agreement"), ("estimate", "confidence"),
        ("estimate", "agreement", "confidence"))


def boxes(path: str) -> list[dict]:
    """Per (fold, box) with an estimate: the chosen path's estimate and Dice, and the truth-free measures."""
    per = collections.defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        per[(row["fold"], row["box"])].append(row)
    out = []
    for rows in per.values():
        chosen, check = rows[0]["chosen"], rows[0]["check"]
        if check:
            out.append({"estimate": check[chosen], "got": np.mean([r[f"dice_{chosen}"] for r in rows]),
                        "agreement": np.mean([r["agreement"] for r in rows]),
                        "confidence": np.mean([r[f"conf_{chosen}"] for r in rows])})
    return out


def errors(pred: np.ndarray, data: list[dict]) -> str:
    e = np.abs(pred - np.array([d["got"] for d in data]))
    return f"{e.mean():.3f} / {e.max():.3f}"


def main() -> None:
    val, test = boxes(sys.argv[1]), boxes(sys.argv[2])
    design = lambda data, names: np.array([[d[n] for n in names] + [1.0] for d in data])  # noqa: E731
    print(f"validation boxes {len(val)}, test boxes {len(test)}; mean / largest |error|\n")
    print("| estimate | weights (last: constant) | validation (in sample) | test |\n|---|---|---|---|")
    print(f"| the engine's (no fit) | — | {errors(np.array([d['estimate'] for d in val]), val)} | "
          f"{errors(np.array([d['estimate'] for d in test]), test)} |")
    for names in SETS:
        w = np.linalg.lstsq(design(val, names), np.array([d["got"] for d in val]), rcond=None)[0]
        print(f"| {' + '.join(names)} | {', '.join(f'{v:.2f}' for v in w)} | {errors(design(val, names) @ w, val)} | "
              f"{errors(design(test, names) @ w, test)} |")


if __name__ == "__main__":
    main()
