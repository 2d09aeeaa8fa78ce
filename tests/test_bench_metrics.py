"""The instance metrics of benchmarks/bench_instances.py, on cases worked out by hand."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_instances import aji, f1_at  # noqa: E402


def two_nuclei():
    gt = np.zeros((20, 20), int)
    gt[2:8, 2:8] = 1
    gt[10:16, 10:16] = 2
    return gt


def test_perfect_missing_merged_and_extra():
    gt = two_nuclei()
    assert f1_at(gt, gt) == 1.0 and aji(gt, gt) == 1.0
    one = np.where(gt == 2, 0, gt)  # one nucleus found: F1 2/3; AJI 36 / (36 + 36)
    assert np.isclose(f1_at(one, gt), 2 / 3) and np.isclose(aji(one, gt), 0.5)
    merged = np.zeros_like(gt)
    merged[2:8, 2:16] = 5  # covers nucleus 1 (36 of 84 px), misses nucleus 2
    assert f1_at(merged, gt) == 0.0 and np.isclose(aji(merged, gt), 36 / (84 + 36))
    extra = gt.copy()
    extra[18:20, 18:20] = 9  # a 4-px false object
    assert np.isclose(f1_at(extra, gt), 0.8) and np.isclose(aji(extra, gt), 72 / 76)
    relabelled = np.where(gt > 0, gt + 40, 0)  # ids do not matter
    assert f1_at(relabelled, gt) == 1.0 and aji(relabelled, gt) == 1.0
    assert f1_at(np.zeros_like(gt), gt) == 0.0 and aji(np.zeros_like(gt), gt) == 0.0
