#!/usr/bin/env python
"""The prompt's forests trained on shifted copies of the box too (issue 20: a forest fitted on one box learns the
prompt image's own intensities, and the other images differ).

The fused and forest paths fit their forest on the box's pixels as the prompt image shows them. Here the final
forest (not the self-check's) also learns from copies of every box region shifted as another image of the same
type might be (studies/probe_check_shift.py's shifts: gamma 0.67 and 1.5, a Gaussian blur of σ 1, noise of sd
0.05), each copy's filters *and* attention probabilities recomputed (the copy's embeddings attend to the unshifted
box's keys, each quadrant to the other three, as the engine's held-out attention does). Variants (--shifts):

  none   the engine (no copy)
  gamma  gamma 0.67 and 1.5
  blur   blur σ 1
  all    the four shifts

The forest samples at most ``filters.SAMPLE_PIXELS`` rows, so more copies mean fewer rows of each.

    python studies/study_forest_augment.py --shifts gamma --data /work/shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none fuse auto --no-end-to-end --out results/forest_aug_gamma_val.md
    python studies/study_forest_augment.py --shifts gamma --bench shipped --out results/shipped_default_aug_gamma.md

``--bench shipped`` runs studies/study_shipped_default.py (the shipped weights on bench_prompt's boxes, in-domain).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other studies

import numpy as np
from probe_check_shift import SHIFTS, shifted_sources
from study_filter_set import run_fit_study

from napari_fewcell.engine.core.progress import Progress
from napari_fewcell.engine.prompt import adapt

VARIANTS = {"none": (), "gamma": ("gamma 0.67", "gamma 1.5"), "blur": ("blur 1",), "all": tuple(SHIFTS)}


def shifted_rows(model, box, shift: str, fused: bool) -> np.ndarray:
    """(M, F) the forest's rows of the box's pixels with every region shifted by ``shift``."""
    sources = shifted_sources(box, SHIFTS[shift])
    feats = adapt.box_features(sources)
    if not fused:
        return feats
    return np.hstack([feats, adapt.held_out_probs(box, queries=adapt.box_embeddings(model, sources))])


def fit_with(shifts: tuple[str, ...]):
    plain = adapt.fit_path

    def fit_path(model, box, params, path, reuse):
        if path not in ("fuse", "forest") or not shifts or reuse.get("extra") is not None:
            return (yield from plain(model, box, params, path, reuse))
        yield Progress(0, 0, "fitting the forest")
        fused = path == "fuse"
        rows = [np.hstack([reuse["feats"], reuse["loqo"]]) if fused else reuse["feats"]]
        rows += [shifted_rows(model, box, s, fused) for s in shifts]
        x = np.concatenate([r[box.taught] for r in rows])
        y = np.tile(box.y[box.taught], len(rows))
        return {"forest": adapt.fit_forest(params.trees, x, y), "embedding": False}

    return fit_path


def main() -> None:
    run_fit_study("study_forest_augment", "--shifts", VARIANTS, "none", fit_with,
                  lambda name: f"study_forest_augment.py --shifts {name}: the final forest of the forest and fused "
                               "paths also learns from the box regions shifted by "
                               f"{', '.join(VARIANTS[name]) or 'nothing'}")


if __name__ == "__main__":
    main()
