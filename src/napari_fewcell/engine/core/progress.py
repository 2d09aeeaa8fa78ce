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


def duration_text(seconds: float) -> str:
    """``seconds`` as a person says it: "40 s", "3 min 5 s", "1 h 2 min"."""
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def time_left_text(spent: float, frac: float) -> str:
    """", about T left" from the time spent on the share ``frac`` of the work done so far ('' before any or after
    all of it is done)."""
    return f", about {duration_text(spent * (1 - frac) / frac)} left" if 0 < frac < 1 else ""
