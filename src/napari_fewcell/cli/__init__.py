"""The ``fewcell`` command line: same engine and parameters as the widgets and the API.

One module per verb group (``segment``, ``partial``: pseudolabel and predict, ``fewshot``: fit, ``suggest``,
``training``: pretrain and train-extractor), each adding its sub-parser(s) and holding the command function(s);
``args`` holds the options several verbs share, ``bar`` the progress bar, ``inputs`` the reading of inputs.
"""
from __future__ import annotations

import argparse
import sys

from ..engine.core.errors import FewcellError
from . import fewshot, partial, segment, suggest, training

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fewcell", description="Segment microscopy images from a tiny annotated prompt.")
    sub = ap.add_subparsers(dest="verb", required=True)
    segment.add_parser(sub)
    partial.add_pseudolabel_parser(sub)
    fewshot.add_parser(sub)
    partial.add_predict_parser(sub)
    suggest.add_parser(sub)
    training.add_pretrain_parser(sub)
    training.add_bank_parser(sub)
    training.add_train_extractor_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in the cards of trained models
    if getattr(args, "threads", 0):  # every verb's --threads
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except FewcellError as err:
        print(f"fewcell: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fewcell: cancelled.", file=sys.stderr)
        return 130
