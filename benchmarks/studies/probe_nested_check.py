#!/usr/bin/env python
"""The fused path's self-check of a prompt of many boxes, with the nested attention computed only for the pixels its
forests learn from (the engine since 2026-12-07) and for every pixel (the engine before: ``rows`` ignored). One prompt
of the centre 64×64 boxes of a fold's first N train images, default path (auto); the check and the final fit are timed
and their estimates printed, once each way, then the same with one box. Run it alone: it reports times.

    python studies/probe_nested_check.py --data ../shared/data --dataset isbi2012_membrane \\
        --weights weights/lodo_isbi_episodic.pt --boxes 12 --out results/nested_check_isbi.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import contextlib
import time

from bench_partial import centre_box, fold_parser
from common import Dataset, finish_report, log, report_header, set_threads


@contextlib.contextmanager
def every_row(on: bool):
    """While on, the nested attention is computed for every pixel, as before ``held_out_probs`` took ``rows``."""
    from napari_fewcell.engine.prompt import adapt

    engine = adapt.held_out_probs
    if on:
        adapt.held_out_probs = lambda box, emb=None, exclude=(), queries=None, rows=None: engine(box, emb, exclude,
                                                                                                queries)
    try:
        yield
    finally:
        adapt.held_out_probs = engine


def main() -> None:
    ap = fold_parser(__doc__)
    ap.add_argument("--boxes", type=int, default=12)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    set_threads(a.threads)
    from napari_fewcell.engine import PromptParams, Segmenter, run

    ds = Dataset(a.data, a.dataset, train_limit=a.train_limit)
    seg = Segmenter(PromptParams(device="cpu", weights=a.weights))

    def prompt_of(ids):
        first, *rest = [(ds.images[i], ds.labels[i], [centre_box(ds.images[i].shape)]) for i in ids]
        return seg.prepare_prompt_boxes(*first, more=rest)

    run(seg.adapt_iter(prompt_of(ds.train[:1])))  # warm-up: the first passes of torch are slower
    rows = []
    for n in (a.boxes, 1):
        for how, every in (("the forests' pixels (the engine)", False), ("every pixel (before)", True)):
            prompt = prompt_of(ds.train[:n])
            seg.checks.clear()  # the segmenter keeps the estimates of boxes it checked: check them anew
            log(f"{n} boxes, {how}")
            t0 = time.perf_counter()
            with every_row(every):
                run(seg.adapt_iter(prompt))
            check = {k: round(v, 6) for k, v in prompt.check.items()}
            rows.append(f"| {n} | {how} | {time.perf_counter() - t0:.1f} s | {prompt.path} | {check} |")
    lines = report_header(f"The fused path's check of many boxes on `{a.dataset}`", False) + [
        f"- weights `{a.weights}`; one prompt of the centre 64×64 boxes of the first train images", "",
        "| boxes | nested attention on | check + fit | path | estimates |", "|---|---|---|---|---|", *rows, ""]
    finish_report(lines, a.out)


if __name__ == "__main__":
    main()
