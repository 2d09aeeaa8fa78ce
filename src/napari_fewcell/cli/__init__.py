"""The ``fewcell`` command line: same engine and parameters as the widgets and the API.

One module per verb group (``segment``, ``partial``: pseudolabel and predict, ``fewshot``: fit, ``suggest``,
``training``: pretrain and train-extractor), each adding its sub-parser(s) and holding the command function(s);
``args`` holds the options several verbs share, ``bar`` the progress bar, ``inputs`` the reading of inputs.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from ..engine.core.errors import FewcellError
from ..engine.core.options import check_threads
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
    try:
        if getattr(args, "threads", 0):  # every verb's --threads
            check_threads(args.threads)
            import torch

            torch.set_num_threads(args.threads)
        code = args.func(args)
        sys.stdout.flush()  # the output list, buffered or not: a reader that went away is found here
        return code
    except FewcellError as err:
        print(f"fewcell: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fewcell: cancelled.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output list went away (`fewcell … | head`): every file is written
        with contextlib.suppress(OSError):  # nothing more reaches the closed pipe, at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run() -> None:
    """The ``fewcell`` console script (and ``python -m napari_fewcell.cli``): :func:`main`, then the process ends
    without the interpreter's teardown, which takes 0.5–1 s once torch is loaded (its libraries' destructors; 2 cores,
    2026-12-07). Every output is written and closed by then, and logging and the standard streams are flushed first.
    With ``FEWCELL_SLOW_EXIT`` set the process exits the usual way (for tools that write their data at exit, such as
    coverage)."""
    code = main()
    if os.environ.get("FEWCELL_SLOW_EXIT"):
        raise SystemExit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (`fewcell … | head`)
            stream.flush()
    os._exit(code)
