"""Long work as generators: they yield :class:`Progress` and return their result.

napari's ``thread_worker`` and the CLI's progress bar drive the same generator; :func:`run`
drives one to its end from plain Python, :func:`relay` runs a sub-generator while reporting
the caller's own progress instead of the sub-generator's.
"""
from __future__ import annotations

from typing import Callable, Generator, NamedTuple

from .errors import Cancelled


class Progress(NamedTuple):
    done: int
    total: int
    message: str


def run(gen: Generator, progress: Callable[[Progress], None] | None = None,
        cancelled: Callable[[], bool] | None = None):
    """Drive a progress generator to its end and return its value."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(p)
        if cancelled is not None and cancelled():
            gen.close()
            raise Cancelled("cancelled")


def relay(gen: Generator, progress: Progress | Callable[[Progress], Progress]):
    """Run a sub-generator, yielding ``progress`` instead of each of its own — or ``progress(p)`` when it is a
    function of the sub-generator's Progress p (stays cancellable between its steps); returns its value."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        yield progress(p) if callable(progress) else progress
