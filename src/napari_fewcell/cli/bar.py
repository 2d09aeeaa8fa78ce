"""The progress bars every ``fewcell`` verb draws on stderr."""
from __future__ import annotations

import sys
import time


class Bar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal, at most one every 5 s)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t0 = time.time()

    pad = 0  #: spaces after a terminal line (to wipe a longer line before it)

    def __call__(self, p) -> None:
        self.draw(p.done / max(1, p.total), f"{p.done}/{p.total} {p.message}", p.done == 0, p.done == p.total)

    def draw(self, frac: float, text: str, first: bool, end: bool, after: str = "") -> None:
        """One line: the label, a bar filled to ``frac``, ``text``, the seconds spent and ``after``; off a terminal
        only the first, the last, and at most one every 5 s between."""
        if not self.tty and not (first or end) and time.time() - self.last < 5:
            return
        self.last = time.time()
        line = f"{self.label} [{'#' * int(frac * 30):<30}] {text} {time.time() - self.t0:.1f}s{after}"
        sys.stderr.write(("\r" + line + " " * self.pad) if self.tty else (line + "\n"))
        if self.tty and end:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Overall(Bar):
    """One bar over many units of work (the images, or the blocks of a big image): units done out of all, the time
    spent and the time left, instead of one bar per unit. ``unit(k, name)`` is the progress callback of unit k."""

    pad = 8

    def __init__(self, label: str, total: int):
        super().__init__(label)
        self.total = max(1, total)

    def unit(self, k: int, name: str):
        def progress(p) -> None:
            self.show(k + p.done / max(1, p.total), name)

        return progress

    def show(self, done: float, name: str) -> None:
        from ..engine.core.progress import time_left_text

        frac = done / self.total
        left = time_left_text(time.time() - self.t0, frac)
        self.draw(frac, f"{int(done)}/{self.total} done ({name})", done == 0, done >= self.total, left)
