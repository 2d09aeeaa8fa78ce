"""A parameter dataclass's field with what a face shows of it, written once beside its default: its label, its help
text and its choices (value and the words shown for it). The widgets build their settings forms from these
(``_qt/forms.ParamsForm``, magicgui); the CLI reads the same defaults and choices. Imports nothing (no torch)."""
from __future__ import annotations

import dataclasses
from typing import Any

from .errors import FewcellError

DEVICES = ("auto", "cpu", "cuda", "mps")  #: where torch runs: the first available of CUDA, MPS, CPU, or as named
PRECISIONS = ("auto", "float32", "bfloat16")  #: a training's arithmetic: bfloat16 where native (auto), or as named
#: how class labels become one label per object (core/instances.py): connected components, or a watershed that also
#: splits touching round objects
INSTANCE_METHODS = ("components", "watershed")


def option(default: Any = dataclasses.MISSING, label: str = "", help: str = "", choices=None, *,
           default_factory: Any = dataclasses.MISSING, **widget) -> Any:
    """A dataclass field whose metadata says how a form shows it: ``label``, ``help`` (a tooltip), ``choices``
    (values, or (value, words) pairs) and ``widget`` options (e.g. ``min``, ``max``, ``step`` of a spin box)."""
    meta = {"label": label, "help": help, "choices": choices, "widget": widget}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_of(cls, name: str) -> dataclasses.Field:
    """The field ``name`` of the dataclass ``cls``."""
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def choices_of(field: dataclasses.Field) -> list[tuple[Any, str]]:
    """The (value, words) pairs of a field's choices (words = the value when none are given); [] without choices."""
    return [c if isinstance(c, tuple) else (c, str(c)) for c in field.metadata.get("choices") or ()]


SEED_MAX = 2**32 - 1  #: the largest seed every generator here takes (numpy's, sklearn's and torch's)


def check_numbers(params) -> None:
    """One sentence for a numeric field of a parameter dataclass (annotated ``int`` or ``float``, or either ``| None``)
    that holds something else: a string, a bool, NaN or infinity, or a fraction where a whole number is meant. Each
    ``check()`` calls it first, so that its own range checks compare numbers."""
    import math
    import numbers

    for f in dataclasses.fields(params):
        kinds = str(f.type).replace(" ", "").split("|")
        value = getattr(params, f.name)
        if kinds[0] not in ("int", "float") or (value is None and "None" in kinds):
            continue
        whole = kinds[0] == "int"
        ok = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise FewcellError(f"The parameter '{f.name}' must be {'a whole number' if whole else 'a finite number'}, "
                               f"not {value!r}.")


def check_params(params, cls) -> None:
    """``params.check()`` for a ``cls`` (a workflow's parameter dataclass); one sentence for anything else."""
    if not isinstance(params, cls):
        raise FewcellError(f"The parameters must be a {cls.__name__} (e.g. {cls.__name__}()), not "
                           f"{type(params).__name__}.")
    params.check()


def check_seed(seed) -> None:
    """One sentence for a seed that is not a whole number from 0 to :data:`SEED_MAX`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise FewcellError(f"The seed must be a whole number from 0 to {SEED_MAX}, not {seed}.")


def check_threads(threads) -> None:
    """One sentence for a CPU thread count that is not 0 (torch's default) or a whole number from 1 to four times this
    machine's cores (more only slows a computation down, and a huge count exhausts the process limit)."""
    import os

    most = 4 * (os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= most:
        raise FewcellError(f"The number of threads must be 0 (the default) or a whole number from 1 to {most} on this "
                           f"machine, not {threads}.")


def check_precision(precision: str) -> None:
    """One sentence for a precision that is not one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise FewcellError(f"Unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}.")
