#!/usr/bin/env python
"""How many features each split of the prompt's forests may weigh (issue 20: auto against the best single path).

The fused path's forest reads 18 filters and the attention's per-class probability (2 columns for two classes). With
scikit-learn's default ``max_features="sqrt"`` each split weighs 4 features drawn at random, so the attention is
among them at about one split in three: where attention alone is the best path (TEM myelin: 82.5 against the fused
path's 77.1), the forest may dilute it with filters. Variants (--max-features, for every forest of the forest and
fused paths and of their self-check):

  sqrt   scikit-learn's default (the engine today)
  0.5    half the features at each split
  1.0    every feature at each split (bagging alone decorrelates the trees)
  0.1    2 of 20 features at each split (more random trees)
  extra  extremely randomised trees (scikit-learn's ExtraTreesClassifier, "sqrt" features, a random threshold per
         feature, bootstrap samples as the random forest's)
  hgb    gradient-boosted trees instead of a forest (scikit-learn's HistGradientBoostingClassifier: 100 rounds of
         31-leaf trees, learning rate 0.1, no early stopping; half the features per split)
  balanced  the engine's forest with classes weighed inversely to their pixels in each tree's bootstrap sample
         (``class_weight="balanced_subsample"``): a sparse class counts as much as the background
  leaf5, leaf20  the engine's forest with at least 5 or 20 pixels in every leaf (``min_samples_leaf``): trees that
         cannot memorise single pixels of the box
  depth12  the engine's forest with trees at most 12 splits deep

``--bench generalise`` (default) runs bench_generalise.py with every other argument; ``--bench shipped`` runs
studies/study_shipped_default.py (the shipped weights on bench_prompt's boxes, in-domain):

    python studies/study_forest_split.py --max-features 0.5 --data ../shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none forest fuse auto --no-end-to-end \
        --out results/forest_split_05_val.md
    python studies/study_forest_split.py --max-features 0.5 --bench shipped --out results/shipped_default_split05.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

from study_filter_set import run_bench, study_options

from napari_fewcell.engine.prompt import adapt, filters

VARIANTS = {"sqrt": "sqrt", "0.5": 0.5, "1.0": 1.0, "0.1": 0.1, "extra": "extra", "hgb": "hgb", "balanced": "balanced",
            "leaf5": {"min_samples_leaf": 5}, "leaf20": {"min_samples_leaf": 20}, "depth12": {"max_depth": 12}}


def fit_with(max_features):
    """filters.fit_forest with ``max_features`` for the forest's splits."""

    def fit_forest(trees, x, y):
        import torch
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        i = filters.pixel_sample(y)
        common = {"n_estimators": trees, "n_jobs": max(1, torch.get_num_threads()), "random_state": 0}
        if max_features == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            forest = HistGradientBoostingClassifier(max_iter=trees * 2, early_stopping=False, max_features=0.5,
                                                    random_state=0)
        elif max_features == "balanced":
            forest = RandomForestClassifier(class_weight="balanced_subsample", **common)
        elif isinstance(max_features, dict):
            forest = RandomForestClassifier(**max_features, **common)
        elif max_features == "extra":
            forest = ExtraTreesClassifier(bootstrap=True, **common)
        else:
            forest = RandomForestClassifier(max_features=max_features, **common)
        return forest.fit(x[i], y[i])

    return fit_forest


def main() -> None:
    argv, name, bench = study_options("study_forest_split", "--max-features", VARIANTS, "sqrt",
                                      ("generalise", "shipped"))
    adapt.fit_forest = filters.fit_forest = fit_with(VARIANTS[name])
    run_bench(bench, argv, f"study_forest_split.py --max-features {name}: every forest of the forest and fused paths "
              "(and their self-check) weighs this share of the features at each split")


if __name__ == "__main__":
    main()
