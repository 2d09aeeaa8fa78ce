"""What bench_scale.py measures of a command it runs: wall time, and the peak memory of every process of its tree
(the command and every worker it starts), polled every 0.2 s; and its helpers to compare outputs."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from common import log

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
POLL = 0.2  #: seconds between polls of a run's process tree
GB = 1024**3


# ---- runs: a subprocess and its process tree ----------------------------------------------------------
@dataclasses.dataclass
class Run:
    cmd: list[str]
    wall: float
    procs: list[dict]  #: per process: label, rss (max polled), hwm (VmHWM at the last poll) in bytes, cpu seconds
    tree_peak: int  #: max over polls of the summed RSS of the whole tree
    log: str

    @property
    def cpu(self) -> float:
        return sum(p["cpu"] for p in self.procs)

    @property
    def peak(self) -> int:
        return max(max(p["rss"], p["hwm"]) for p in self.procs)

    def check_line(self) -> str:
        """The CLI's self-check sentence (which adapt path it took), '' if none."""
        return next((ln for ln in self.log.splitlines() if "self-check" in ln), "")


def vm_hwm(pid: int) -> int:
    m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) * 1024 if m else 0


def proc_label(p: psutil.Process, root: int, peaks: dict) -> str:
    if p.pid == root:
        return "fewcell command (client)"
    cmd = " ".join(p.cmdline())
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "spawn_main" in cmd or "forkserver" in cmd:
        return f"worker {1 + sum(v['label'].startswith('worker') for v in peaks.values())}"
    return Path(p.cmdline()[0]).name if p.cmdline() else p.name()


def poll_tree(root: psutil.Process, peaks: dict) -> int:
    """One poll: update every process's peaks; returns the tree's summed RSS now."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            rss, hwm, t = p.memory_info().rss, vm_hwm(p.pid), p.cpu_times()
            if p.pid not in peaks:
                peaks[p.pid] = {"label": proc_label(p, root.pid, peaks), "rss": 0, "hwm": 0, "cpu": 0.0}
        except (psutil.Error, OSError):
            continue
        peaks[p.pid]["rss"] = max(peaks[p.pid]["rss"], rss)
        peaks[p.pid]["hwm"] = max(peaks[p.pid]["hwm"], hwm)
        peaks[p.pid]["cpu"] = max(peaks[p.pid]["cpu"], t.user + t.system)
        total += rss
    return total


def measure(cmd: list[str], log_path: Path, commands: list[str]) -> Run:
    """Run ``cmd`` (this checkout's package importable), polling its process tree; exit with its output on error."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    commands.append(shlex.join(cmd))
    peaks: dict[int, dict] = {}
    tree_peak = 0
    with open(log_path, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        root = psutil.Process(proc.pid)
        while True:
            tree_peak = max(tree_peak, poll_tree(root, peaks))
            try:
                proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                pass
        wall = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    if proc.returncode:
        sys.exit(f"command failed (exit status {proc.returncode}): {shlex.join(cmd)}\n{text[-3000:]}")
    run = Run(cmd, wall, list(peaks.values()), tree_peak, text)
    log(f"{wall:6.1f} s, peak process {run.peak / GB:.2f} GB: {shlex.join(cmd[3:])[:150]}")
    return run


def cli(images: list, out: Path, options=()) -> list[str]:
    """``fewcell segment`` prompted by the sample's box, on the CPU."""
    p = json.loads((SAMPLE / "nuclei_prompt.json").read_text())
    return [sys.executable, "-m", "napari_fewcell.cli", "segment", *map(str, images),
            "--prompt-image", str(SAMPLE / p["image"]), "--prompt-labels", str(SAMPLE / p["prompt_labels"]),
            "--box", *map(str, p["box"]), "--out", str(out), "--device", "cpu", *options]


def diff_arrays(a, b, step: int) -> tuple[int, int]:
    """(pixels that differ, nonzero pixels of ``a``) of two same-shape 2D arrays (zarr or numpy), read
    step² at a time."""
    if tuple(a.shape) != tuple(b.shape):
        return -1, 0
    n_diff = n_fg = 0
    for y in range(0, a.shape[0], step):
        for x in range(0, a.shape[1], step):
            ra, rb = np.asarray(a[y : y + step, x : x + step]), np.asarray(b[y : y + step, x : x + step])
            n_diff += int(np.count_nonzero(ra != rb))
            n_fg += int(np.count_nonzero(ra))
    return n_diff, n_fg


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
