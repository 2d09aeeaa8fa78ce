"""Nuclei instances from one 64×64 box (issue 14, item 3): F1 at IoU 0.5 and the aggregated Jaccard index (AJI).

For each data set (dsb2018_fluo, dsb2018_he), seeded 64×64 boxes are cut from *train* images; each box prompts
the segmentation of the *test* images, whose class labels are turned into instances (one label per nucleus) by
napari-fewcell's three methods: connected components; the watershed of the smoothed distance transform from its
h-maxima, which splits touching round objects; and that watershed seeded from the segmentation's confidence
("confidence": the smoothed distance × winning-class probability, from ``segment_iter(..., confidence=True)``).
Beside it, on the same boxes: the random-forest baseline (100 trees on multiscale filters, fitted on the box)
followed by the same instance methods, its confidence being the forest's highest class probability. The
"watershed" row is the control of the "confidence" one: the same step with a confidence of 1. Scored against
the sets' instance labels (`labels_instances`). The shipped weights saw both sets' train images in pre-training
(not a leave-one-out figure).

    python benchmarks/bench_instances.py --data ../shared/data --out benchmarks/results/instances.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from common import BOX, Dataset, RFBaseline, finish_report, log, report_header, seeded_box, set_threads

METHODS = ("components", "watershed", "confidence")


def overlaps(pred: np.ndarray, gt: np.ndarray):
    """(intersection (G+1, P+1), areas of gt ids, areas of pred ids) of two instance images (0 = background)."""
    p_ids, p = np.unique(pred, return_inverse=True)
    g_ids, g = np.unique(gt, return_inverse=True)
    inter = np.bincount(g.ravel() * len(p_ids) + p.ravel(), minlength=len(g_ids) * len(p_ids))
    inter = inter.reshape(len(g_ids), len(p_ids))
    if p_ids[0] != 0:  # no background in pred: add an empty column so index 0 is background
        inter = np.hstack([np.zeros((len(g_ids), 1), inter.dtype), inter])
    if g_ids[0] != 0:
        inter = np.vstack([np.zeros((1, inter.shape[1]), inter.dtype), inter])
    return inter[1:, 1:], inter[1:, :].sum(1), inter[:, 1:].sum(0)


def f1_at(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> float:
    """F1 of object matching at IoU > thr (above 0.5 a match is one-to-one)."""
    inter, ga, pa = overlaps(pred, gt)
    if inter.size == 0:
        return float(len(ga) == len(pa) == 0)
    iou = inter / (ga[:, None] + pa[None, :] - inter)
    tp = int((iou > thr).sum())
    return 2 * tp / max(1, len(ga) + len(pa))


def aji(pred: np.ndarray, gt: np.ndarray) -> float:
    """Aggregated Jaccard index (Kumar et al. 2017): each ground-truth nucleus with the prediction of highest IoU
    (a nucleus no prediction touches adds its own area to the union); predictions never chosen add theirs."""
    inter, ga, pa = overlaps(pred, gt)
    if len(ga) == 0:
        return float(len(pa) == 0)
    if len(pa) == 0:
        return 0.0
    union = ga[:, None] + pa[None, :] - inter
    best = (inter / union).argmax(1)
    rows = np.arange(len(ga))
    hit = inter[rows, best] > 0  # a nucleus no prediction touches adds its own area only
    c = inter[rows, best].sum()
    u = np.where(hit, union[rows, best], ga).sum()
    unused = np.setdiff1d(np.arange(len(pa)), best[hit])
    return float(c / (u + pa[unused].sum()))


def score_set(root: Path, name: str, seeds: int, max_test: int, threads: int) -> dict:
    from napari_fewcell.engine.core.instances import instance_labels
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    ds = Dataset(root, name)
    inst = {i: tifffile.imread(root / name / "labels_instances" / f"{i}.tif") for i in ds.test[:max_test]}
    seg, rf = Segmenter(PromptParams(device="cpu")), RFBaseline(threads)
    scores = {(m, k): [] for m in ("fewcell", "random forest") for k in METHODS}
    for seed in range(seeds):
        src, y, x = seeded_box(seed, ds, 0.2, 0.6)
        prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
        clf = rf.fit(rf.cached(src, ds.images[src])[0], ds.labels[src], y, x)
        for i, truth in inst.items():
            classes = {"fewcell": run(seg.segment_iter(ds.images[i], prompt, confidence=True)),
                       "random forest": rf.predict_confidence(clf, rf.cached(i, ds.images[i])[0])}
            for m, (lab, conf) in classes.items():
                for k in METHODS:
                    pred = instance_labels((lab > 0).astype(np.uint8), k, confidence=conf)
                    scores[(m, k)].append((f1_at(pred, truth), aji(pred, truth)))
        log(f"{name} box {seed}: {src} y={y} x={x}, adapt path {prompt.path}")
    return {"n_test": len(inst), "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sets", nargs="+", default=["dsb2018_fluo", "dsb2018_he"])
    ap.add_argument("--boxes", type=int, default=4, help="seeded boxes per set")
    ap.add_argument("--max-test", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/instances.md")
    ap.add_argument("--note", action="append", default=[])
    a = ap.parse_args()
    set_threads(a.threads)
    rep = report_header("napari-fewcell nuclei instances from one 64×64 box", False) + [
        f"- note: {n}" for n in a.note] + [
        "", f"{a.boxes} seeded 64×64 boxes per set (train images, 20–60 % nuclei); each scores the first "
        f"{a.max_test} test images. Mean over boxes × images; F1 at IoU 0.5 and AJI, in %.", "",
        "| set | method | instances by | F1@0.5 | AJI |", "|---|---|---|---|---|"]
    for name in a.sets:
        res = score_set(Path(a.data), name, a.boxes, a.max_test, a.threads)
        for (m, k), vals in res["scores"].items():
            f1, j = np.mean(vals, axis=0) * 100
            rep.append(f"| {name} ({res['n_test']} test images) | {m} | {k} | {f1:.1f} | {j:.1f} |")
    rep += ["", "- The same boxes, the same test images and the same instance step for both methods; only the "
            "class labels (and confidences) differ (napari-fewcell's default path against the random forest).",
            "- watershed: of the Gaussian-smoothed (σ = 1 px) distance transform from its h-maxima (h = 1); "
            "confidence: the same on the distance × confidence; σ and h chosen on train images only."]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
