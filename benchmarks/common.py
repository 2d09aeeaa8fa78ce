"""What the benchmark scripts share: data sets, metrics, the random-forest baseline, reports.

Every ``bench_*.py`` (and ``ablation_extras.py``) imports from here and from no other script.
Run the scripts as ``python benchmarks/<script>.py``: Python puts ``benchmarks/`` on the path.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib
import os
import re
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

BOX = 64  #: edge of a prompt / partial-label box (pixels), as in paper 000
T0 = time.perf_counter()  #: start of the run (this module is imported first)
QUICK = " (QUICK smoke run — not a result)"  #: appended to a --quick report's title
LIBS = {"sklearn": "scikit-learn", "skimage": "scikit-image"}


# ---- progress, time, memory, threads --------------------------------------------------------------
def elapsed() -> float:
    """Seconds since the run started."""
    return time.perf_counter() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():7.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(fn, *a):
    """``(fn(*a), seconds)``."""
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def vm_hwm_gb() -> float:
    """Peak RSS of this process image only (Linux ru_maxrss also keeps the parent's RSS at fork+exec)."""
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024**2


def set_threads(n: int) -> None:
    """``n`` threads for torch and for the BLAS / OpenMP pools (k-means, scikit-learn, numpy)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def sha12(path) -> str:
    """The first 12 hex digits of a file's sha256 (as the reports print them)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


# ---- data -----------------------------------------------------------------------------------------
class Dataset:
    """All images and 0/1 labels of one data set, with its train/test ids from split.csv.

    ``train_limit``: keep (and read) only the first N train images.
    """

    def __init__(self, root: str | Path, name: str, train_limit: int | None = None):
        d = Path(root) / name
        rows = [line.split(",") for line in (d / "split.csv").read_text().split()[1:]]
        self.name = name
        self.train = [i for i, s in rows if s == "train"][:train_limit]
        self.test = [i for i, s in rows if s == "test"]
        ids = self.train + self.test
        self.images = {i: tifffile.imread(d / "images" / f"{i}.tif") for i in ids}
        self.labels = {i: (tifffile.imread(d / "labels" / f"{i}.tif") > 0).astype(np.uint8) for i in ids}


# ---- metrics --------------------------------------------------------------------------------------
def dice_pct(pred: np.ndarray, gt: np.ndarray) -> float:
    """Paper 000's metric: mean of foreground Dice and background Dice, in %."""
    p, g = pred > 0, gt > 0
    return float(np.mean([fg_dice(a, b) for a, b in ((p, g), (~p, ~g))]))


def fg_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Foreground Dice in % (paper 002's metric); 100 when both are empty."""
    p, g = pred > 0, gt > 0
    den = int(p.sum()) + int(g.sum())
    return 100.0 if den == 0 else 200.0 * float(np.logical_and(p, g).sum()) / den


def mean_sd(values, ddof: int = 1) -> str:
    """``"mean ± sd"`` to two decimals (sd 0 for a single value)."""
    v = np.asarray(values, float)
    return f"{v.mean():.2f} ± {v.std(ddof=ddof) if len(v) > ddof else 0.0:.2f}"


# ---- the ilastik-style baseline: multiscale features + a random forest -----------------------------
class RFBaseline:
    def __init__(self, threads: int):
        self.threads, self.cache = threads, {}

    def features(self, img: np.ndarray) -> np.ndarray:
        from skimage.feature import multiscale_basic_features

        f = multiscale_basic_features(img, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16,
                                      workers=self.threads, channel_axis=-1 if img.ndim == 3 else None)
        return f.astype(np.float32)  # the forest works in float32 anyway: same predictions, half the memory

    def cached(self, key, img) -> tuple[np.ndarray, float]:
        """(features, seconds it took to compute them), computed once per key."""
        if key not in self.cache:
            self.cache[key] = timed(self.features, img)
        return self.cache[key]

    def forest(self, X: np.ndarray, y: np.ndarray, seed: int = 0):
        """100 trees fitted on pixel rows ``X`` (n, F) with labels ``y`` (n,)."""
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, n_jobs=self.threads, random_state=seed).fit(X, y)

    def fit(self, feat: np.ndarray, labels: np.ndarray, y: int, x: int):
        """A forest fitted on the pixels of the BOX×BOX box at (y, x)."""
        return self.forest(feat[y : y + BOX, x : x + BOX].reshape(-1, feat.shape[-1]),
                           labels[y : y + BOX, x : x + BOX].reshape(-1))

    @staticmethod
    def predict(clf, feat: np.ndarray) -> np.ndarray:
        return clf.predict(feat.reshape(-1, feat.shape[-1])).reshape(feat.shape[:2])


# ---- workflow 3 (perceptron on MSD feature maps) ---------------------------------------------------
def trained_on() -> dict[str, str]:
    """Shipped extractor name → the data set it was trained on (from its card)."""
    from napari_fewcell.engine.fewshot.features import Extractors

    return {s["name"]: s["trained_on"] for s in Extractors(device="cpu").spec}


def loco_names(target: str) -> list[str]:
    """Leave-one-class-out: the shipped extractors not trained on ``target``."""
    return [n for n, t in trained_on().items() if t != target]


def perceptron_dice(model, fx, ds: Dataset, ids) -> list[float]:
    """Foreground Dice % of a fitted perceptron on each image ``ids`` of ``ds``, with extractors ``fx``."""
    return [fg_dice(model.labels_from(model.probabilities(fx.features(ds.images[i]))), ds.labels[i]) for i in ids]


# ---- reports --------------------------------------------------------------------------------------
def utc_now() -> str:
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"


def nproc() -> int:
    return len(os.sched_getaffinity(0))


def command_line() -> str:
    return shlex.join([Path(sys.executable).name] + sys.argv)


def report_header(title: str, quick: bool, libs: tuple[str, ...] = ()) -> list[str]:
    """Title, then date, `nproc`, torch version and threads, other libraries' versions, command line."""
    import torch

    versions = "".join(f"; {LIBS.get(m, m)} {importlib.import_module(m).__version__}" for m in libs)
    return [
        f"# {title}" + (QUICK if quick else ""), "",
        f"- date: {utc_now()}; `nproc` = {nproc()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
        f"{versions}; device cpu",
        f"- command: `{command_line()}`",
    ]


def write_report(lines: list[str], out: str) -> None:
    """Write the Markdown report to ``out`` and print it."""
    text = "\n".join(lines)
    text += "" if text.endswith("\n") else "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)


def finish_report(rep: list[str], out: str) -> None:
    """Append wall time and peak memory, then write the report."""
    rep.append(f"- wall time {elapsed():.0f} s; peak memory (VmHWM) {vm_hwm_gb():.2f} GB")
    write_report(rep, out)
