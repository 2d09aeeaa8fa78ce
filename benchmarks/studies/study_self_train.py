#!/usr/bin/env python
"""The prompt's forest taught by its own confident labels around the box too (issue 20: a forest fitted on one
64×64 box has seen a few thousand pixels of one place; the context the prompt already keeps around the box, 64 px
on each side, holds eight times as many).

The fused and forest paths fit their forest on the box's pixels. Here that forest then labels the rest of each box's
region (the box with its context, ``annotated.CONTEXT``): its filters, and for the fused path the attention of the
region's embeddings to the box's pixels (exact keys, as the engine's check); the pixels it labels with a probability
of at least ``--variant``'s threshold join the box's pixels (at most ``PSEUDO`` times as many, a seeded sample in the
proportions of the labels), and the forest is fitted again on both. The self-check is not changed (it estimates the
forest fitted on the box alone). Variants: ``none`` (the engine), ``t0.8``, ``t0.9``.

    python studies/study_self_train.py --variant t0.9 --data /work/shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none fuse auto --no-end-to-end --out results/self_train_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import numpy as np
import torch
from study_filter_set import run_fit_study

from napari_fewcell.engine.nets import attention
from napari_fewcell.engine.prompt import adapt, filters

VARIANTS = {"none": None, "t0.8": 0.8, "t0.9": 0.9}
PSEUDO = 2  #: at most this many pseudo-labelled pixels per pixel of the boxes


@torch.inference_mode()
def region_rows(model, box, source, keys, fused: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) the forest's rows of the region's pixels outside the box, and a mask of them over the region."""
    feats = filters.forest_features(source.region)
    outside = np.ones(feats.shape[:2], bool)
    outside[source.box] = False
    x = feats[outside]
    if fused:
        emb = model.any_size(torch.from_numpy(source.region)[None])[0]
        p = attention.attend(emb.permute(1, 2, 0)[torch.from_numpy(outside)].float(), keys, box.tau)
        x = np.hstack([x, p.numpy()])
    return x, outside


def pseudo_rows(model, box, forest, thr: float, fused: bool, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """The confidently labelled rows of every box region's context, and their labels (a seeded proportional sample
    of at most ``budget``)."""
    sample = np.flatnonzero(box.keyed)
    sample = sample[filters.pixel_sample(box.y[sample])]
    keys = attention.exact_keys(box.emb[torch.from_numpy(sample)], box.y[sample])
    xs, ys = [], []
    for s in box.sources:
        if s.kind != "box":
            continue
        x, _ = region_rows(model, box, s, keys, fused)
        q = filters.forest_proba(forest, x, box.n_classes)
        sure = q.max(1) >= thr
        xs.append(x[sure])
        ys.append(q[sure].argmax(1))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) > budget:
        keep = np.sort(np.random.default_rng(0).choice(len(y), budget, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def fit_with(thr: float | None):
    plain = adapt.fit_path

    def fit_path(model, box, params, path, reuse):
        fitted = yield from plain(model, box, params, path, reuse)
        if thr is None or path not in ("fuse", "forest") or reuse.get("extra") is not None:
            return fitted
        fused = path == "fuse"
        x0 = np.hstack([reuse["feats"], reuse["loqo"]]) if fused else reuse["feats"]
        x0, y0 = x0[box.taught], box.y[box.taught]
        x1, y1 = pseudo_rows(model, box, fitted["forest"], thr, fused, PSEUDO * len(y0))
        x, y = np.concatenate([x0, x1]), np.concatenate([y0, y1])
        fitted["forest"] = adapt.fit_forest(params.trees, x, y, filters.FIT_PIXELS * (1 + PSEUDO))
        return fitted

    return fit_path


def main() -> None:
    run_fit_study("study_self_train", "--variant", VARIANTS, "none", fit_with,
                  lambda name: f"study_self_train.py --variant {name}: the forest of the fused and forest paths is "
                               f"fitted again on the box and its context's pixels it labels with probability ≥ "
                               f"{VARIANTS[name]}")


if __name__ == "__main__":
    main()
