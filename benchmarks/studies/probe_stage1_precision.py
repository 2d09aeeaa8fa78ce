#!/usr/bin/env python
"""Stage 1 of workflow 2 with its fine-tuning in bfloat16: faster, and are the pseudo-labels the same? Runs stage 1 as
the product does (one centre 64×64 box per train image, fine-tuning, the held-out choice, labelling) once in float32
and once with the network's forward passes of each training step under bfloat16 autocast (the held-out checks and the
labelling stay float32), and reports stage 1's time, its epochs, the labeller chosen and the pseudo-labels' Dice.
Run it alone: it reports times.

    python studies/probe_stage1_precision.py --data ../shared/data --dataset dsb2018_he \\
        --weights weights/lodo_dsb2018he_episodic.pt --out results/stage1_precision_lodo_he.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import contextlib
import time

import numpy as np
from bench_partial import stage1_study
from common import dice_pct, finish_report, log, report_header


@contextlib.contextmanager
def bf16_training_passes(on: bool):
    """While on, stage 1's network passes that build a graph (the training steps') run under bfloat16 autocast."""
    import torch

    from napari_fewcell.engine.core.device import training_autocast
    from napari_fewcell.engine.partial import pseudo

    engine = pseudo._Trainer._embed

    def embed(self, imgs):
        with training_autocast(self.device, "bfloat16" if torch.is_grad_enabled() else "float32"):
            return engine(self, imgs).float()

    pseudo._Trainer._embed = embed if on else engine
    try:
        yield
    finally:
        pseudo._Trainer._embed = engine


def main() -> None:
    a, ds, data = stage1_study(__doc__)
    from napari_fewcell.engine import PseudoParams, pseudolabel_iter, run
    from napari_fewcell.engine.partial import describe_labeller

    rows = []
    for name, on in (("float32", False), ("bfloat16 training passes", True)):
        log(f"stage 1, {name}")
        t0 = time.perf_counter()
        with bf16_training_passes(on):
            res = run(pseudolabel_iter(data, PseudoParams(weights=a.weights, device="cpu")))
        secs = time.perf_counter() - t0
        dice = np.mean([dice_pct(q, ds.labels[i]) for q, i in zip(res.labels, ds.train)])
        rows.append(f"| {name} | {secs:.0f} s | {len(res.history) - 1} | {describe_labeller(res.labeller)} | "
                    f"{dice:.2f} |")
    lines = report_header(f"Stage 1's fine-tuning in float32 and bfloat16 on `{a.dataset}`", False) + [
        f"- weights `{a.weights}`; train images {ds.train[0]}–{ds.train[-1]} ({len(ds.train)}), one centre 64×64 "
        "box each", "", "| fine-tuning | stage 1 time | epochs run | labeller | pseudo-labels Dice (%) |",
        "|---|---|---|---|---|", *rows, ""]
    finish_report(lines, a.out)


if __name__ == "__main__":
    main()
