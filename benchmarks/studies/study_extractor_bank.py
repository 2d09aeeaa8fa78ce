#!/usr/bin/env python
"""Do more known classes help workflow 3's perceptron on a class it never saw (issue 21, item 1: "MSD extractors
for every labelled task of the eight sets, if they help LODO")? A study on TRAIN images only, leave one data set
out, with studies/study_bank_perceptron.py's protocol (5 support crops of 256² drawn from the first two thirds of
the fold's train split, 10 seeded draws, scored on the last third; foreground Dice %, median [quartiles] over
draws) and two feature sets on the same crops:

* ``shipped``: the product today, the shipped MSD extractors not trained on the fold + the extras;
* ``bank``: the same + every extractor of ``--bank`` (a folder of ``msd_<name>.pt`` files written by
  ``fewcell train-extractor``) not trained on the fold (its card's ``trained_on``).

The ilastik-style random forest on the same crops' pixels is beside them.

    python studies/study_extractor_bank.py --data ../shared/data --bank /tmp/ext --out results/extractor_bank_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses


import numpy as np
from common import Dataset, finish_report, loco_names, report_header
from study_bank_perceptron import fold_rows, protocol_line, quartiles, score_draws, split, study_parser

SETS = ("shipped", "bank")


def bank_extractors(folder: str, fold: str):
    """An Extractors of the ``msd_*.pt`` files in ``folder`` whose card does not name ``fold`` (None if none)."""
    from napari_fewcell.engine.fewshot.features import Extractors
    from napari_fewcell.engine.nets import msd

    names = [p.stem[len(msd.PREFIX):] for p in sorted(Path(folder).glob(f"{msd.PREFIX}*.pt"))
             if msd.load_msd(p)[2].get("trained_on", "") != fold]
    if not names:
        return None
    shipped_dir = msd.shipped_dir
    msd.shipped_dir = lambda: Path(folder)  # Extractors reads the shipped folder; point it at the bank while loading
    try:
        return Extractors(names, device="cpu", cache_bytes=0)
    finally:
        msd.shipped_dir = shipped_dir


class Features:
    """The two feature sets of a whole image (each normalised by its own range, as the product does)."""

    def __init__(self, fold: str, bank: str):
        from napari_fewcell.engine.fewshot.features import EXTRAS, Extractors

        self.shipped = Extractors(loco_names(fold), device="cpu", cache_bytes=0)  # each image's features are used once
        self.bank = bank_extractors(bank, fold)
        self.n_extras = len(EXTRAS)
        self.names = [s["name"] for s in self.bank.spec] if self.bank else []
        self.spec = self.shipped.spec  # what fit_iter records

    def all(self, image, rng=None) -> dict[str, np.ndarray]:
        if rng is not None:
            raise ValueError("this study normalises each image by its own range only")
        ship = self.shipped.features(image)
        if self.bank is None:
            return {"shipped": ship, "bank": ship}
        more = self.bank.features(image)[: -self.n_extras]  # the bank's maps; the extras are in ``ship``
        return {"shipped": ship, "bank": np.concatenate([more, ship])}


def run_fold(fold: str, a) -> list[str]:
    ds = Dataset(a.data, fold)
    pool, val = split(ds, a)
    fe = Features(fold, a.bank)
    q, cell = quartiles(score_draws(ds, pool, val, fe, SETS, a))
    return [f"| {fold} | {', '.join(loco_names(fold))} | {', '.join(fe.names) or '—'} | {len(pool)} / {len(val)} | "
            + " | ".join(cell(k) for k in (*SETS, "RF"))
            + f" | {q['bank'][1] - q['shipped'][1]:+.1f} | {q['bank'][1] - q['RF'][1]:+.1f} |"]


def main() -> None:
    ap = study_parser(__doc__, "results/extractor_bank_val.md")
    ap.add_argument("--bank", required=True, help="folder of msd_<name>.pt extractors (fewcell train-extractor)")
    a = ap.parse_args()
    rows, secs = fold_rows(a, run_fold)
    rep = report_header("More known classes for the perceptron, leave one data set out (train images only)", False)
    rep += [protocol_line(a), f"- wall time {secs:.0f} s", "",
            "| fold | shipped extractors (not the fold's) | bank extractors added (not the fold's) | pool / scored | "
            "shipped | bank | RF | bank − shipped | bank − RF |", "|---" * 9 + "|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
