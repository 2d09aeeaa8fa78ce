"""How long `fewcell pseudolabel --train-net` takes, as a user runs it (issue 24's time target): a fresh process
(start-up, reading, stage 1, the held-out choice, labelling, writing, stage 2, saving) on a data set's first N train
images, one centre 64×64 box of labels each. Run it alone on the machine.

    python benchmarks/time_partial.py --data ../shared/data --dataset isbi2012_membrane \
        --weights benchmarks/weights/lodo_isbi_episodic.pt --out benchmarks/results/time_partial_isbi.md
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_partial import centre_box
from common import Dataset, finish_report, log, report_header, timed_command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="isbi2012_membrane")
    ap.add_argument("--train-limit", type=int, default=15)
    ap.add_argument("--weights", default=None, help="embedding weights (default: shipped)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-rounds", type=int, default=None,
                    help="pass --train-rounds R to the command (default: the command's own default)")
    ap.add_argument("--train-precision", default=None,
                    help="pass --train-precision P to the command (default: the command's own default)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ds = Dataset(a.data, a.dataset, train_limit=a.train_limit)
    root = Path(a.data) / a.dataset
    images = [str(root / "images" / f"{i}.tif") for i in ds.train]
    boxes = {centre_box(ds.images[i].shape) for i in ds.train}
    if len(boxes) != 1:
        sys.exit("time_partial: the train images differ in size, so one --box cannot be their centre box")
    box = [str(v) for v in boxes.pop()]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "napari_fewcell.cli", "pseudolabel", *images, "--labels",
               *(str(root / "labels" / f"{i}.tif") for i in ds.train), "--box", *box, "--out", f"{tmp}/out",
               "--train-net", f"{tmp}/net.pt", "--device", "cpu", *(["--weights", a.weights] if a.weights else []),
               *(["--train-rounds", str(a.train_rounds)] if a.train_rounds else []),
               *(["--train-precision", a.train_precision] if a.train_precision else [])]
        log(f"fewcell pseudolabel on {len(images)} images")
        secs, error = timed_command(cmd, a.threads)
        if error:
            sys.exit(f"time_partial: the command failed: {error}")
        card = json.loads(Path(f"{tmp}/net.json").read_text())["card"]
    stage2 = card["wall_seconds"]
    minutes, seconds = divmod(round(secs), 60)
    lines = report_header(f"`fewcell pseudolabel --train-net` on `{a.dataset}`, {len(images)} train images", False)
    lines += [f"- weights `{a.weights or 'shipped'}`; one centre {box[2]}×{box[3]} box per image; image size "
              f"{ds.images[ds.train[0]].shape[0]}×{ds.images[ds.train[0]].shape[1]}; {a.threads} threads", "",
              f"- rounds trained: {card.get('rounds', 1)}; stage-2 precision: "
              f"{card.get('precision', card['params'].get('precision', 'float32'))}", "",
              "| whole command (fresh process) | stage 2 (card) | the rest: start-up, stage 1, choice, labels, I/O |",
              "|---|---|---|", f"| {minutes} min {seconds:.0f} s | {stage2:.0f} s | {secs - stage2:.0f} s |", "",
              f"- stage 1 epochs run: {len(card['stage1_history']) - 1}; kept: {card['stage1_labeller']}", ""]
    finish_report(lines, a.out)


if __name__ == "__main__":
    main()
