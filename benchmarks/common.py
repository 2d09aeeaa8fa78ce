"""What the benchmark scripts share: data sets, metrics, the random-forest baseline, reports.

Every ``bench_*.py`` (and the studies) imports from here; what a weights file was trained on is ``cards.py``, the
simulated correction stroke ``strokes.py``.
Run the scripts as ``python benchmarks/<script>.py``: Python puts ``benchmarks/`` on the path.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
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

    ``train_limit``: keep (and read) only the first N train images. ``folder``: the label folder
    (``labels`` = the set's structure; e.g. ``labels_myelin`` for another structure of the same images).
    """

    def __init__(self, root: str | Path, name: str, train_limit: int | None = None, folder: str = "labels"):
        d = Path(root) / name
        rows = [line.split(",") for line in (d / "split.csv").read_text().split()[1:]]
        self.name, self.folder = name, folder
        self.train = [i for i, s in rows if s == "train"][:train_limit]
        self.test = [i for i, s in rows if s == "test"]
        ids = self.train + self.test
        self.images = {i: tifffile.imread(d / "images" / f"{i}.tif") for i in ids}
        self.labels = {i: (tifffile.imread(d / folder / f"{i}.tif") > 0).astype(np.uint8) for i in ids}


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

    @staticmethod
    def predict_confidence(clf, feat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, confidence): the labels of :meth:`predict` (the class of highest probability) and that
        probability per pixel, float32 — the forest's counterpart of ``segment_iter(..., confidence=True)``."""
        proba = clf.predict_proba(feat.reshape(-1, feat.shape[-1]))
        labels = clf.classes_[proba.argmax(1)].reshape(feat.shape[:2])
        return labels, proba.max(1).astype(np.float32).reshape(feat.shape[:2])


# ---- one-shot prompts: seeded boxes, several methods scored image by image --------------------------
def box_fractions(labels: np.ndarray) -> np.ndarray:
    """Foreground fraction of the BOX×BOX box at every position (y, x) of a 0/1 label image."""
    c = np.pad(labels.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (c[BOX:, BOX:] - c[:-BOX, BOX:] - c[BOX:, :-BOX] + c[:-BOX, :-BOX]) / BOX**2


def seeded_box(seed: int, ds: Dataset, lo: float, hi: float) -> tuple[str, int, int]:
    """Seeded (train id, y, x) of a BOX×BOX box with a foreground fraction in [lo, hi]: the train images in a
    seeded order, the first that has such a box, a position drawn uniformly among its valid ones."""
    rng = np.random.default_rng(seed)
    for src in rng.permutation(ds.train):
        frac = box_fractions(ds.labels[src])
        ys, xs = np.nonzero((frac >= lo) & (frac <= hi))
        if len(ys):
            k = int(rng.integers(len(ys)))
            return str(src), int(ys[k]), int(xs[k])
    sys.exit(f"No train image of {ds.name} ({ds.folder}) holds a {BOX}×{BOX} box with {lo:.0%}–{hi:.0%} foreground.")


@dataclasses.dataclass
class Scores:
    """One method prompted with each box: per box, its numbers on every scored image and the prompt's own."""

    dice: list = dataclasses.field(default_factory=list)  #: per box: [mean fg/bg Dice % per image]
    fg: list = dataclasses.field(default_factory=list)  #: per box: [foreground Dice % per image]
    secs: list = dataclasses.field(default_factory=list)  #: per box: [seconds per image]
    prep: list = dataclasses.field(default_factory=list)  #: per box: seconds to prepare the prompt
    info: list = dataclasses.field(default_factory=list)  #: per box: what the method said about its prompt

    def per_box(self) -> list[float]:
        return [float(np.mean(d)) for d in self.dice]

    def mean(self) -> float:
        return float(np.mean(self.per_box()))


class ForestPrompt:
    """The RF baseline as a prompt method for :func:`score_prompts`: prepare = features of the prompt image + the
    forest on the box; apply = features + predict (features once per image for all boxes, their time counted
    for every box)."""

    def __init__(self, rf: RFBaseline):
        self.rf, self.key, self.feat, self.t_feat = rf, None, None, 0.0

    def prepare(self, ds: Dataset, box):
        src, y, x = box
        clf, secs = timed(lambda: self.rf.fit(self.rf.features(ds.images[src]), ds.labels[src], y, x))
        return clf, secs, {}

    def apply(self, clf, img, key):
        if key != self.key:
            (self.feat, self.t_feat), self.key = timed(self.rf.features, img), key
        pred, secs = timed(self.rf.predict, clf, self.feat)
        return pred, self.t_feat + secs


def score_prompts(ds: Dataset, boxes, ids, methods: dict) -> dict[str, Scores]:
    """Every method prompted with every box, scored on every image of ``ids``, image by image (one image's
    features in memory at a time). A method has ``prepare(ds, box) -> (state, seconds, info)`` and
    ``apply(state, image, key) -> (labels, seconds)``."""
    scores, states = {m: Scores() for m in methods}, {m: [] for m in methods}
    for m, method in methods.items():
        for box in boxes:
            state, secs, info = method.prepare(ds, box)
            states[m].append(state)
            for field, value in (("prep", secs), ("info", info), ("dice", []), ("fg", []), ("secs", [])):
                getattr(scores[m], field).append(value)
        log(f"{ds.name}: {m}: {len(boxes)} prompts prepared ({np.mean(scores[m].prep):.2f} s each)")
    for n, i in enumerate(ids):
        lab = ds.labels[i]
        for m, method in methods.items():
            for b, state in enumerate(states[m]):
                pred, secs = method.apply(state, ds.images[i], (ds.name, i))
                scores[m].dice[b].append(dice_pct(pred, lab))
                scores[m].fg[b].append(fg_dice(pred, lab))
                scores[m].secs[b].append(secs)
        log(f"{ds.name}: image {n + 1}/{len(ids)} ({i}) scored")
    return scores


# ---- end to end: `fewcell segment` as a user runs it, vs the RF baseline ------------------------------
def timed_command(cmd: list[str], threads: int) -> tuple[float, str]:
    """(seconds, error) of a command in a fresh process with ``threads`` BLAS/OpenMP threads and this checkout's
    package importable; error is the last line of its stderr ('' when it worked)."""
    import napari_fewcell

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(napari_fewcell.__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc, secs = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, env=env))
    error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1] if proc.returncode else ""
    return secs, error


def prompt_command(data, ds: Dataset, box, ids, tool: list[str], options=(), threads: int = 2) -> tuple[float, str]:
    """(seconds, error) of a one-shot segmentation command ``tool`` in a fresh process on images ``ids`` of
    ``ds`` prompted by ``box`` (start-up, prompt, read, segment, write): `fewcell segment` or the RF command."""
    src, y, x = box
    img_dir = Path(data) / ds.name / "images"
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "prompt_labels.tif"
        tifffile.imwrite(lab, ds.labels[src][y : y + BOX, x : x + BOX])
        cmd = [*tool, *(str(img_dir / f"{i}.tif") for i in ids), "--prompt-image", str(img_dir / f"{src}.tif"),
               "--prompt-labels", str(lab), "--box", str(y), str(x), str(BOX), str(BOX), "--out", f"{tmp}/out",
               *options]
        return timed_command(cmd, threads)


def segment_cli(data, ds: Dataset, box, ids, weights, options=(), threads: int = 2) -> tuple[float, str]:
    """(seconds, error) of `fewcell segment` in a fresh process (start-up, model load, prompt, read, segment,
    write)."""
    return prompt_command(data, ds, box, ids, [sys.executable, "-m", "napari_fewcell.cli", "segment"],
                          ["--weights", str(weights), "--device", "cpu", *options], threads)


def rf_cli(data, ds: Dataset, box, ids, threads: int = 2) -> tuple[float, str]:
    """(seconds, error) of the RF baseline as a command in a fresh process (benchmarks/rf_cli.py: start-up,
    imports, read, features, fit, predict, write): the end-to-end comparison on equal terms."""
    tool = [sys.executable, str(Path(__file__).with_name("rf_cli.py"))]
    return prompt_command(data, ds, box, ids, tool, ["--threads", str(threads)], threads)


def rf_end_to_end(rf: RFBaseline, data, ds: Dataset, box, ids) -> float:
    """Seconds of the RF baseline for the same job in this process: read the images, features of the prompt
    image + fit on the box, features + predict on every image."""
    src, y, x = box
    img_dir = Path(data) / ds.name / "images"

    def job():
        clf = rf.fit(rf.features(tifffile.imread(img_dir / f"{src}.tif")), ds.labels[src], y, x)
        for i in ids:
            rf.predict(clf, rf.features(tifffile.imread(img_dir / f"{i}.tif")))

    return timed(job)[1]


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
    rng = getattr(model, "intensity_range", None)  # PerceptronParams.intensity "support": the model's range
    return [fg_dice(model.labels_from(model.probabilities(fx.features(ds.images[i], rng))), ds.labels[i])
            for i in ids]


# ---- reports --------------------------------------------------------------------------------------
def utc_now() -> str:
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"


def nproc() -> int:
    return len(os.sched_getaffinity(0))


def command_line() -> str:
    return shlex.join([Path(sys.executable).name] + sys.argv)


def fold_study_parser(doc: str, boxes: int):
    """An argument parser with what the leave-one-out studies share: --data, --out, --boxes, --max-test, --split and
    the folds (FOLD=WEIGHTS ...); a study adds its own options."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--boxes", type=int, default=boxes)
    ap.add_argument("--max-test", type=int, default=3)
    ap.add_argument("--split", choices=["val", "test"], default="val",
                    help="score train images no box was cut from (val), or the test split")
    ap.add_argument("folds", nargs="*", metavar="FOLD=WEIGHTS")
    return ap


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
