"""Argument builders shared by several ``fewcell`` verbs: the same option, name, default and help everywhere.

Each builder adds one option, so a verb keeps its options in the order its ``--help`` lists them.
"""
from __future__ import annotations

import argparse

from ..engine.core.options import DEVICES, INSTANCE_METHODS, choices_of, field_of

DATA_HELP = "folder of data sets (see docs/models.md)"


def add_images(p: argparse.ArgumentParser, help: str) -> None:
    """The positional IMAGE list (one or more)."""
    p.add_argument("images", nargs="+", metavar="IMAGE", help=help)


def add_box(p: argparse.ArgumentParser, help: str, *, value_type=float, required: bool = True,
            repeat: bool = False) -> None:
    """``--box Y X H W``; with ``repeat`` it may be given several times (a list of boxes)."""
    p.add_argument("--box", required=required, nargs=4, type=value_type, action="append" if repeat else "store",
                   metavar=("Y", "X", "H", "W"), help=help)


def add_out(p: argparse.ArgumentParser, metavar: str, help: str | None = None) -> None:
    """The required ``--out`` (a folder or a file, as ``metavar`` says)."""
    p.add_argument("--out", required=True, metavar=metavar, help=help)


def add_overwrite(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--overwrite", action="store_true", help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=DEVICES)


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads``; main() applies it to torch before any verb runs."""
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)


def add_instances(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instances", choices=INSTANCE_METHODS, default=None,
                   help="write instance labels (one id per object) instead of class labels")


def add_class_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class-name", action="append", metavar="VALUE=NAME", help="class name for the metadata")


def add_tau(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--tau", type=float, default=None, help=help)


def add_weights(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--weights", default=None, metavar="PATH", help=help)


def add_tta(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--tta", action="store_true", help=help)


def add_data(p: argparse.ArgumentParser, default: str) -> None:
    """``--data``: the folder of training data sets."""
    p.add_argument("--data", default=default, help=DATA_HELP)


def add_run_options(p: argparse.ArgumentParser, func, overwrite: str | None, *, device: bool = True,
                    seed: bool = True) -> None:
    """The options that close most verbs — ``--device``, ``--seed``, ``--threads``, ``--overwrite`` — and the
    function the verb runs."""
    if device:
        add_device(p)
    if seed:
        add_seed(p)
    add_threads(p)
    add_overwrite(p, overwrite)
    p.set_defaults(func=func)


def field_option(p: argparse.ArgumentParser, flag: str, cls, name: str, help: str | None = None, **kw) -> None:
    """``flag`` for the field ``name`` of a parameter dataclass: its default, type and choices come from the field
    (written once, in the workflow's params.py); the help is the command line's own words."""
    field = field_of(cls, name)
    choices = [value for value, _ in choices_of(field)]
    if choices:
        kw["choices"] = choices
    elif field.default is not None and not isinstance(field.default, bool):
        kw.setdefault("type", type(field.default))
    kw.setdefault("default", field.default)
    p.add_argument(flag, help=help, **kw)
