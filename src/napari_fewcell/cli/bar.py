"""The progress bar every ``fewcell`` verb draws on stderr."""
from __future__ import annotations

import sys
import time


class Bar:
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


class Overall:
    """One bar over many units of work (the images, or the blocks of a big image): units done out of all, the time
    spent and the time left, instead of one bar per unit. ``unit(k, name)`` is the progress callback of unit k."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.t0 = label, max(1, total), time.time()
        self.tty, self.last = sys.stderr.isatty(), -1.0

    def unit(self, k: int, name: str):
        def progress(p) -> None:
            self.show(k + p.done / max(1, p.total), name)

        return progress

    def show(self, done: float, name: str) -> None:
        end = done >= self.total
        if not self.tty and not end and time.time() - self.last < 5:
            return
        self.last, spent = time.time(), time.time() - self.t0
        frac = done / self.total
        left = f", about {spent * (1 - frac) / frac:.0f}s left" if 0 < frac < 1 else ""
        line = (f"{self.label} [{'#' * int(frac * 30):<30}] {int(done)}/{self.total} done ({name}) "
                f"{spent:.1f}s{left}")
        sys.stderr.write(("\r" + line + " " * 8) if self.tty else (line + "\n"))
        if self.tty and end:
            sys.stderr.write("\n")
        sys.stderr.flush()
