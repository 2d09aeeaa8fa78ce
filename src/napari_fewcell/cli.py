"""The ``fewcell`` command line: same engine and parameters as the widgets and the API."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


class _Bar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t0 = time.time()

    def __call__(self, p) -> None:
        frac = p.done / max(1, p.total)
        if not self.tty and p.done not in (0, p.total) and time.time() - self.last < 5:
            return
        self.last = time.time()
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {p.done}/{p.total} {p.message} {time.time() - self.t0:.1f}s"
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        if self.tty and p.done == p.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_segment(a) -> int:
    from .engine.io import check_out_dir, read_image, write_labels_tif
    from .engine.prompt import PromptParams, Segmenter

    params = PromptParams(tau=a.tau, attention=a.attention, prototypes=a.prototypes, weights=a.weights, device=a.device)
    seg = Segmenter(params)
    prompt = seg.prepare_prompt(read_image(a.prompt_image), read_image(a.prompt_labels, "prompt labels"), a.box)
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=[Path(p).stem for p in a.images])  # after the
    # prompt is known to be good, so a bad prompt leaves no empty --out folder behind
    for path in a.images:
        labels = seg.segment(read_image(path), prompt, _Bar(Path(path).name))
        target = out / f"{Path(path).stem}.tif"
        write_labels_tif(target, labels, source=str(path), overwrite=True)
        print(target)
    return 0


def _cmd_pretrain(a) -> int:
    from .engine.pretrain import DATASETS, PretrainParams, pretrain_iter
    from .engine.prompt import run

    names, weights = [], []
    for item in a.datasets:
        name, _, weight = item.partition("=")
        names.append(name)
        weights.append(float(weight) if weight else DATASETS.get(name, 1.0))
    p = PretrainParams(
        data=a.data, datasets=tuple(names), dataset_weights=tuple(weights), steps=a.steps, batch=a.batch,
        seed=a.seed, threads=a.threads, lr=a.lr, dice_weight=a.dice_weight, invert_p=a.invert_p, init=a.init,
    )
    run(pretrain_iter(p, a.out), _Bar("pretrain"))
    print(a.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .engine.pretrain import DATASETS

    ap = argparse.ArgumentParser(prog="fewcell", description="Segment microscopy images from a tiny annotated prompt.")
    sub = ap.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("segment", help="segment whole images from one labelled prompt box")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="images to segment (TIFF or anything skimage reads)")
    s.add_argument("--prompt-image", required=True, metavar="P.tif", help="image holding the prompt box")
    s.add_argument(
        "--prompt-labels", required=True, metavar="L.tif",
        help="labels: the size of the prompt image (only the box is read) or exactly the box's size",
    )
    s.add_argument("--box", required=True, nargs=4, type=float, metavar=("Y", "X", "H", "W"), help="prompt box")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for <IMAGE stem>.tif label images")
    s.add_argument("--tau", type=float, default=None, help="attention temperature (default: the weights' own, 0.1)")
    s.add_argument("--weights", default=None, metavar="PATH", help="weights file (default: shipped weights)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.add_argument(
        "--attention", default="prototypes", choices=["prototypes", "exact"],
        help="prototypes: fast (default); exact: every prompt pixel is a key (slow on CPU)",
    )
    s.add_argument("--prototypes", type=int, default=64, help="k-means prototypes per class (fast path)")
    s.add_argument("--overwrite", action="store_true", help="replace existing <stem>.tif files in --out")
    s.set_defaults(func=_cmd_segment)

    p = sub.add_parser("pretrain", help="train the embedding network episodically (writes a weights file)")
    p.add_argument("--data", default="../shared/data", help="folder of data sets (see docs/models.md)")
    p.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), metavar="NAME[=WEIGHT]",
        help="data sets to train on, each optionally with its sampling weight",
    )
    p.add_argument("--dice-weight", type=float, default=0.0, help="weight of a soft-Dice term added to the loss")
    p.add_argument("--invert-p", type=float, default=0.2, help="probability of inverting an episode's images")
    p.add_argument("--init", default=None, metavar="WEIGHTS.pt", help="start from these weights (warm start)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", required=True, metavar="WEIGHTS.pt")
    p.set_defaults(func=_cmd_pretrain)
    return ap


def main(argv: list[str] | None = None) -> int:
    from .engine.errors import FewcellError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FewcellError as err:
        print(f"fewcell: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fewcell: cancelled.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
