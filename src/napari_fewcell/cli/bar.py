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
