#!/usr/bin/env python
"""The time of one round of the "what to annotate next" loop on a 2048² image (issue 21's last target).

What the widget does after Accept (``_qt/suggest_widget.py``): refit the perceptron on every accepted tile and
rescore the tiles left (the user waits for these two), then, in the background while the user paints on, predict the
image (the prediction layer) and prepare the next rescore's tile features. A simulated annotator accepts
the top suggestion each round with its true labels. The image is a 2×2 mosaic of the top-left 1024² of four Coelho
NIH3T3 test images (fluorescent nuclei); the default session (perceptron, the default score, 256² tiles), or
``--score consistency`` (the default before 2026-12-06: the perceptron's consistency at its own resolution, 1/3).
Every step is timed apart; the first suggestion (before any accept) is timed too.

    python bench_loop.py --data ../../shared/data --rounds 4 --out results/loop_speed.md
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import Dataset, finish_report, log, report_header, set_threads


def mosaic(data_root: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ds = Dataset(data_root, "coelho2009_nih3t3_nuclei", train_limit=0)
    ids = [i for i in ds.test if min(ds.images[i].shape[:2]) >= 1024][:4]
    if len(ids) < 4:
        raise SystemExit("Coelho's test split holds fewer than four images of 1024² or more.")
    tiles = [(ds.images[i][:1024, :1024], ds.labels[i][:1024, :1024]) for i in ids]
    img = np.block([[tiles[0][0], tiles[1][0]], [tiles[2][0], tiles[3][0]]])
    lab = np.block([[tiles[0][1], tiles[1][1]], [tiles[2][1], tiles[3][1]]])
    return img, lab, ids


def prepare(s, row: dict, on: bool) -> None:
    """What the widget runs in the background once the suggestions are shown, while the user paints the tile."""
    from napari_fewcell.engine.core.progress import run

    if on:
        t0 = time.perf_counter()
        row["kept"] = run(s.prepare_iter())
        row["prepare"] = time.perf_counter() - t0


def rounds(img: np.ndarray, lab: np.ndarray, n: int, prepared: bool = True, score: str | None = None) -> list[dict]:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.suggest.params import SessionParams, SuggestParams
    from napari_fewcell.engine.suggest.session import Session

    suggest = SuggestParams() if score is None else SuggestParams(score=score)
    s = Session([img], ["mosaic"], SessionParams(suggest=suggest, tile_memory=SessionParams.tile_memory if prepared
                                                 else 0))
    t0 = time.perf_counter()
    hits = run(s.suggest_iter())
    out = [{"round": 0, "rescore": time.perf_counter() - t0}]
    prepare(s, out[0], prepared)
    for r in range(1, n + 1):
        s.accept(hits[0].image, hits[0].box, lab)
        row = {"round": r, "tile": hits[0].box}
        try:
            t0 = time.perf_counter()
            run(s.refit_iter(predict=[]))
            row["refit"] = time.perf_counter() - t0
        except Exception as err:  # one class in the tiles so far: the widget says so and the user paints on
            log(f"round {r}: {err}")
            row["refit"] = float("nan")
        if s.model is not None:
            t0 = time.perf_counter()
            run(s.predict_iter(0))
            row["predict"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = run(s.suggest_iter())
        row["rescore"] = time.perf_counter() - t0
        prepare(s, row, prepared)
        log(f"round {r}: " + ", ".join(f"{k} {v:.2f} s" for k, v in row.items() if k not in ("round", "kept", "tile")))
        out.append(row)
    return out


def score_name(score: str | None) -> str:
    from napari_fewcell.engine.suggest.params import NO_MODEL, SuggestParams

    name = score or f"{SuggestParams.score} (the default)"
    return name + (" at the perceptron's own resolution (1/3; the shipped network's 1/2)" if
                   (score or SuggestParams.score) not in NO_MODEL else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/loop_speed.md")
    ap.add_argument("--no-prepare", action="store_true",
                    help="keep no tile features between rounds (SessionParams.tile_memory = 0), as before 2026-12-06")
    ap.add_argument("--score", default=None, help="the score (default: SuggestParams')")
    args = ap.parse_args()
    set_threads(args.threads)
    img, lab, ids = mosaic(args.data)
    log(f"mosaic {img.shape} of Coelho test images {ids}")
    rows = rounds(img, lab, args.rounds, not args.no_prepare, args.score)
    fmt = lambda v: "—" if v is None or v != v else f"{v:.2f}"  # noqa: E731
    rep = report_header("napari-fewcell: one round of the annotate-next loop, 2048²", False) + [
        f"- image: 2×2 mosaic of the top-left 1024² of Coelho test images {', '.join(ids)} (2048², gray)",
        f"- session: perceptron refitted on the accepted tiles (true labels), score {score_name(args.score)}, 256² "
        "tiles; round 0 = the first suggestion (by the shipped network, for a model's score)",
        "- tile features kept between rounds: " + ("no (`--no-prepare`)" if args.no_prepare else
        "yes — after each round's suggestions the session prepares the next rescore (`Session.prepare_iter`: the "
        "perceptron's features of every tile left, the widget runs it in the background while the user paints the "
        "tile); timed apart, in the last column, not part of the round"), "",
        "| round | tile accepted (y, x) | refit s | predict the image s | rescore s | accept → refit → rescore s "
        "| with the prediction s "
        "| prepared while the user paints s (tile versions kept) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        refit, pred, score = row.get("refit"), row.get("predict"), row["rescore"]
        loop = None if refit is None else refit + score
        prep = "—" if "prepare" not in row else f"{row['prepare']:.2f} ({row['kept']})"
        tile = "—" if "tile" not in row else f"{row['tile'][0]}, {row['tile'][1]}"
        rep.append(f"| {row['round']} | {tile} | {fmt(refit)} | {fmt(pred)} | {fmt(score)} | {fmt(loop)} | "
                   f"{fmt(None if loop is None or pred is None else loop + pred)} | {prep} |")
    rep.append("")
    finish_report(rep, args.out)


if __name__ == "__main__":
    main()
