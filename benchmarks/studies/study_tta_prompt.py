#!/usr/bin/env python
"""Test-time augmentation on prompt attention (a study for issue 20's in-domain row): the target image is seen
under 1, 2, 4 or 8 of the square's symmetries (identity, flips, rotations), each view's embeddings are mapped back
and attended to the same prompt keys, and the class probabilities are averaged. bench_prompt.py's protocol (6 seeded
64×64 boxes from the train images, every test image, attention alone, the shipped weights).

    python studies/study_tta_prompt.py --data ../shared/data --out results/tta_prompt.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import time

import numpy as np
import torch
from bench_prompt import BOX, pick_box
from common import Dataset, dice_pct, finish_report, log, report_header, set_threads
from studies.study_shipped_default import SETS, study_args

#: (k rotations by 90°, flip left-right) of each view; the first n are used for n views
VIEWS = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))
COUNTS = (1, 2, 4, 8)


def view(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(0, 1))
    return np.ascontiguousarray(a[:, ::-1] if flip else a)


def unview(e: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    e = e.flip(2) if flip else e
    return torch.rot90(e, -k, dims=(1, 2))


def probs_per_view(seg, keys, img) -> list[torch.Tensor]:
    from napari_fewcell.engine.core.image import as_image2d, intensity_range
    from napari_fewcell.engine.nets import attention

    arr = as_image2d(img)
    rng = intensity_range(arr)
    out = []
    for k, flip in VIEWS:
        e = unview(seg.embed(view(arr, k, flip), rng, slice(None), slice(None)), k, flip)
        out.append(attention.attend(e.reshape(e.shape[0], -1).T.float(), keys, seg.tau).reshape(*arr.shape[:2], -1))
    return out


def main() -> None:
    a = study_args(__doc__, "results/tta_prompt.md")
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    set_threads(a.threads)
    seg = Segmenter(PromptParams(device="cpu", adapt="none"))
    rows = []
    for name, (lo, hi) in SETS.items():
        ds = Dataset(a.data, name)
        per = {n: [] for n in ("segment()", *COUNTS)}
        secs = []
        for b in range(a.boxes):
            src, y, x = pick_box(b, ds, lo, hi)
            prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
            seg.adapt(prompt)
            keys, lut = seg.keys(prompt), seg.keys(prompt).classes
            got = {n: [] for n in per}
            for i in ds.test:
                got["segment()"].append(dice_pct(seg.segment(ds.images[i], prompt), ds.labels[i]))
                t = time.perf_counter()
                views = probs_per_view(seg, keys, ds.images[i])
                secs.append(time.perf_counter() - t)
                for n in COUNTS:
                    pred = lut[torch.stack(views[:n]).mean(0).argmax(-1).numpy()]
                    got[n].append(dice_pct(pred, ds.labels[i]))
            for n in per:
                per[n].append(float(np.mean(got[n])))
            log(f"{name} box {b}: " + ", ".join(f"{n} {per[n][-1]:.2f}" for n in per))
        rows.append(f"| {name} | " + " | ".join(f"{np.mean(per[n]):.2f} ± {np.std(per[n], ddof=1):.2f}" for n in per)
                    + f" | {np.mean(secs):.2f} |")
        rows.append(f"| {name}, − 1 view, per box | | | "
                    + " | ".join(", ".join(f"{v - w:+.2f}" for v, w in zip(per[n], per[1])) for n in COUNTS[1:])
                    + " | |")
    rep = report_header("Test-time augmentation on prompt attention (issue 20, in-domain; a study)", False) + [
        f"- {a.boxes} seeded 64×64 boxes per set (bench_prompt.py's), every test image, attention alone, shipped "
        "weights; Dice % mean ± sd over boxes. Views: identity, flip, 180°, 180° + flip, then the 90° rotations.", "",
        "| set | segment() | 1 view | 2 views | 4 views | 8 views | s per test image, all 8 views |",
        "|---|---|---|---|---|---|---|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
