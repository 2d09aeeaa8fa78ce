#!/usr/bin/env python
"""How the self-check should score its held-out pixels (issue 20, item 4): per group, or pooled.

The self-check predicts each held-out group of a prompt's pixels (a quadrant of one box, or a box of several) from
the others and scores the predictions against the labels. Until 2026-12-06 the engine scored each group's mean per-class
Dice and averaged over the groups. A quadrant of a 64×64 box is 32×32: where a class is sparse
(a few nuclei in the box) one missed edge moves its Dice by a lot, so attention, whose errors are at edges, reads low
(DSB fluorescence: 0.67–0.79 estimated, 0.94–0.95 got). The whole image is scored as one, so the variant ``pooled``
scores every held-out pixel together: one mean per-class Dice over all the groups' predictions.

Variants (--score):
  quadrants  the mean over groups of each group's mean per-class Dice (the engine's score before 2026-12-06)
  pooled     the mean per-class Dice of all the held-out predictions together

``--bench generalise`` (default) runs bench_generalise.py with every other argument; ``--bench shipped`` runs
studies/study_shipped_default.py (the shipped weights on bench_prompt's boxes, in-domain):

    python studies/study_check_score.py --score pooled --data ../shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none forest fuse auto --no-end-to-end \
        --out results/check_pooled_val.md
    python studies/study_check_score.py --score pooled --bench shipped --out results/shipped_default_pooled.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import numpy as np
from study_filter_set import run_bench, study_options

from napari_fewcell.engine.prompt import annotated

SCORES = ("quadrants", "pooled")


def group_mean(pred, truth, groups):
    """The mean over held-out groups holding two classes or more of each group's mean per-class Dice; the Dice of
    all of them together when none has (the engine's score before 2026-12-06)."""
    scores = [s for g in np.unique(groups) if (s := annotated.mean_dice(pred[groups == g], truth[groups == g]))
              is not None]
    return float(np.mean(scores)) if scores else annotated.mean_dice(pred, truth)


def score_with(name: str):
    """BoxData.score with the variant's score of the pixels it can score (BoxData.fair)."""

    def score(self, pred):
        if not self.fair.any():
            return None
        pred, truth = pred[self.fair], self.y[self.fair]
        if name == "quadrants":
            return group_mean(pred, truth, self.quad[self.fair])
        return annotated.mean_dice(pred, truth)

    return score


def main() -> None:
    argv, name, bench = study_options("study_check_score", "--score", SCORES, "quadrants",
                                      ("generalise", "shipped"))
    annotated.BoxData.score = score_with(name)
    note = f"study_check_score.py --score {name}: the self-check scores " + (
        "each held-out group and averages" if name == "quadrants" else
        "all held-out predictions together")
    run_bench(bench, argv, note)


if __name__ == "__main__":
    main()
