"""Whole stacks (issue 14, item 4): a 30-plane stack of 512² segmented from one 64×64 prompt box on one plane.

The stack is ISBI 2012's 30 serial EM sections (512², images 000–029 of `isbi2012_membrane`), a real Z stack;
the prompt box is on plane 0. Timed, run alone: the engine with the model loaded (`segment_stack_iter`:
adaptation + 30 planes) and `fewcell segment` on the stack TIFF in a fresh process (start-up, adaptation, 30 planes,
writing), beside the random-forest baseline on the same box (features of plane 0's box, a forest, features +
prediction of every plane). Target: ≤ 15 s on 2 cores. Dice (mean of membrane and cell Dice, %) over the planes
is reported too; the shipped weights saw ISBI 000–014 in pre-training, so it is not a leave-one-out figure.

    python benchmarks/bench_stack.py --data ../shared/data --out benchmarks/results/stack.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from common import BOX, RFBaseline, dice_pct, finish_report, log, report_header, set_threads, timed_command


def load_stack(data: Path) -> tuple[np.ndarray, np.ndarray]:
    d = data / "isbi2012_membrane"
    ids = [f"{i:03d}" for i in range(30)]
    return (np.stack([tifffile.imread(d / "images" / f"{i}.tif") for i in ids]),
            np.stack([tifffile.imread(d / "labels" / f"{i}.tif") for i in ids]))


def first_box(labels: np.ndarray, lo: float = 0.15, hi: float = 0.5) -> tuple[int, int]:
    """The first 64×64 box on a 32-px grid of plane 0 whose foreground fraction lies in [lo, hi]."""
    for y in range(64, labels.shape[0] - BOX - 64, 32):
        for x in range(64, labels.shape[1] - BOX - 64, 32):
            if lo <= (labels[y : y + BOX, x : x + BOX] > 0).mean() <= hi:
                return y, x
    raise SystemExit("no box with a usable foreground fraction on plane 0")


def engine_run(stack, labels, y, x) -> tuple[float, np.ndarray, str]:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    seg = Segmenter(PromptParams(device="cpu"))
    seg.segment(stack[0][:128, :128], seg.prepare_prompt(stack[0], labels[0], (y, x, BOX, BOX)))  # warm-up
    t = time.perf_counter()
    prompt = seg.prepare_prompt(stack[0], labels[0], (y, x, BOX, BOX))
    out = run(seg.segment_stack_iter(stack, prompt))
    return time.perf_counter() - t, out, prompt.path


def rf_run(stack, labels, y, x, threads: int) -> tuple[float, np.ndarray]:
    rf = RFBaseline(threads)
    t = time.perf_counter()
    clf = rf.fit(rf.features(stack[0]), labels[0], y, x)
    out = np.stack([rf.predict(clf, rf.features(plane)) for plane in stack])
    return time.perf_counter() - t, out


def cli_run(stack, labels, y, x, threads: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        tifffile.imwrite(f"{tmp}/stack.tif", stack, photometric="minisblack")
        tifffile.imwrite(f"{tmp}/prompt.tif", stack[0])
        tifffile.imwrite(f"{tmp}/prompt_labels.tif", labels[0][y : y + BOX, x : x + BOX])
        cmd = [sys.executable, "-m", "napari_fewcell.cli", "segment", f"{tmp}/stack.tif", "--prompt-image",
               f"{tmp}/prompt.tif", "--prompt-labels", f"{tmp}/prompt_labels.tif", "--box", str(y), str(x),
               str(BOX), str(BOX), "--out", f"{tmp}/out", "--device", "cpu"]
        secs, err = timed_command(cmd, threads)
        if not err and tifffile.imread(f"{tmp}/out/stack.tif").shape != stack.shape:
            err = "the output is not a stack of the input's shape"
        return secs, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/stack.md")
    ap.add_argument("--note", action="append", default=[], help="a line for the report header (repeatable)")
    a = ap.parse_args()
    set_threads(a.threads)
    stack, labels = load_stack(Path(a.data))
    y, x = first_box(labels[0])
    log(f"stack {stack.shape}, box y={y} x={x} on plane 0")
    t_eng, out, path = engine_run(stack, labels, y, x)
    log(f"engine {t_eng:.1f} s")
    t_rf, rf_out = rf_run(stack, labels, y, x, a.threads)
    log(f"rf {t_rf:.1f} s")
    t_cli, err = cli_run(stack, labels, y, x, a.threads)
    log(f"cli {t_cli:.1f} s {err}")
    d_fc = [dice_pct(out[z], labels[z]) for z in range(len(stack))]
    d_rf = [dice_pct(rf_out[z], labels[z]) for z in range(len(stack))]
    rep = report_header("napari-fewcell whole-stack benchmark", False) + [f"- note: {n}" for n in a.note] + [
        "", f"ISBI 2012, 30 planes of 512² (images 000–029 as a Z stack); one 64×64 prompt box on plane 0 at "
        f"y={y} x={x}; {a.threads} threads; target ≤ 15 s on 2 cores.", "",
        "| method | seconds | what is timed | mean Dice % over the 30 planes (planes 15–29) |", "|---|---|---|---|",
        f"| fewcell engine, default path (auto → {path}) | {t_eng:.1f} | model loaded: prompt, adaptation, 30 planes "
        f"| {np.mean(d_fc):.2f} ({np.mean(d_fc[15:]):.2f}) |",
        f"| `fewcell segment` on the stack TIFF | {t_cli:.1f} | fresh process: start-up, model, prompt, adaptation, "
        f"30 planes, writing{' — ERROR: ' + err if err else ''} | same labels |",
        f"| random forest (100 trees) on the same box | {t_rf:.1f} | features + fit on plane 0, features + "
        f"prediction of 30 planes | {np.mean(d_rf):.2f} ({np.mean(d_rf[15:]):.2f}) |", "",
        "- The shipped weights were pre-trained with ISBI 000–014 (full labels), so the Dice is not a "
        "leave-one-data-set-out figure; planes 15–29 (the test split) are shown apart. The timing is the point here.",
    ]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
