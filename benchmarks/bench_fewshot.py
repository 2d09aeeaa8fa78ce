#!/usr/bin/env python
"""Benchmark of workflow 3: a perceptron on MSD feature maps fitted on a few support images (paper 002).

Leave-one-class-out as in the paper: for each target data set, only the shipped extractors that
were *not* trained on it give the features. Support sets of 1, 5 and 10 train images are drawn
10 times; each fitted perceptron (logistic regression alone, and + BFGS on Dice) and an
ilastik-style random forest fitted on the same support pixels are scored on every test image.
The Dice of the target class (foreground Dice, paper 002's metric) is averaged over the test
images of a draw; the report gives the median and quartiles over the draws. Then the fit time
for 5 support images of 256² and the apply time per 512² image. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import (
    Dataset,
    RFBaseline,
    fg_dice,
    finish_report,
    log,
    perceptron_dice,
    report_header,
    set_threads,
    sha12,
    trained_on,
)

from napari_fewcell.engine.core.options import PRECISIONS

SETS = ["dsb2018_fluo", "dsb2018_he", "isbi2012_membrane"]
SHOTS = [1, 5, 10]


def q(values) -> str:
    a = np.percentile(values, [25, 50, 75])
    return f"{a[1]:.1f} [{a[0]:.1f}, {a[2]:.1f}]"


def rf_fit_predict(rf: RFBaseline, ds: Dataset, ids, test_ids, max_pixels: int, seed: int) -> list[float]:
    """Random forest on a sample (as many pixels as the perceptron uses) of the support images' pixels."""
    feats = [rf.cached(i, ds.images[i])[0] for i in ids]
    n = sum(f.shape[0] * f.shape[1] for f in feats)
    take = min(1.0, max_pixels / n)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i, f in zip(ids, feats):
        rows = np.arange(f.shape[0] * f.shape[1])
        if take < 1:
            rows = rng.choice(rows, max(1, int(round(len(rows) * take))), replace=False)
        xs.append(f.reshape(-1, f.shape[-1])[rows])
        ys.append(ds.labels[i].ravel()[rows])
    clf = rf.forest(np.concatenate(xs), np.concatenate(ys), seed)
    return [fg_dice(rf.predict(clf, rf.cached(t, ds.images[t])[0]), ds.labels[t]) for t in test_ids]


def run_set(ds: Dataset, fx, shots, draws: int, rf: RFBaseline | None, test_ids, intensity: str = "image") -> dict:
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    res = {}
    for k in shots:
        rows = {"logistic": [], "logistic + BFGS": [], "RF baseline": [], "fit_s": [], "kept_bfgs": 0, "iters": []}
        for d in range(draws):
            rng = np.random.default_rng(1000 * k + d)
            ids = [ds.train[j] for j in rng.choice(len(ds.train), k, replace=False)]
            data = [support(ds.images[i], ds.labels[i], name=i) for i in ids]
            for label, bfgs in (("logistic", False), ("logistic + BFGS", True)):
                model = run(fit_iter(data, PerceptronParams(bfgs=bfgs, seed=d, intensity=intensity),
                                     extractors=fx))
                rows[label].append(float(np.mean(perceptron_dice(model, fx, ds, test_ids))))
                if bfgs:
                    rows["fit_s"].append(model.meta["fit_seconds"])
                    rows["kept_bfgs"] += sum(r["kept"] == "bfgs" for r in model.meta["fit"])
                    rows["iters"] += [r.get("bfgs_iterations", 0) for r in model.meta["fit"]]
            if rf is not None:
                rows["RF baseline"].append(float(np.mean(rf_fit_predict(rf, ds, ids, test_ids,
                                                                        PerceptronParams.max_pixels, d))))
            log(f"  {ds.name} {k}-shot draw {d + 1}/{draws}: logistic {rows['logistic'][-1]:.1f} "
                f"BFGS {rows['logistic + BFGS'][-1]:.1f}"
                + (f" RF {rows['RF baseline'][-1]:.1f}" if rf is not None else ""))
        res[k] = rows
    return res


def upper_bound(ds: Dataset, name: str, test_ids) -> float:
    """The target class's own shipped extractor (trained on its train split) applied directly."""
    import torch

    from napari_fewcell.engine.core.image import as_image2d, intensity_range, normalize
    from napari_fewcell.engine.nets.msd import PREFIX, load_msd, shipped_dir

    net, _, _ = load_msd(shipped_dir() / f"{PREFIX}{name}.pt")
    out = []
    with torch.inference_mode():
        for t in test_ids:
            arr = as_image2d(ds.images[t])
            logits = net(torch.from_numpy(normalize(arr, intensity_range(arr)))[None])[0, 0]
            out.append(fg_dice((logits > 0).numpy(), ds.labels[t]))
    return float(np.mean(out))


def cpu_precision(precision: str | None) -> str:
    """The arithmetic the extractors run in on this CPU for ``precision`` (None: the product's default)."""
    import torch

    from napari_fewcell.engine.core.device import resolve_precision
    from napari_fewcell.engine.fewshot.params import PerceptronParams

    return resolve_precision(torch.device("cpu"), precision or PerceptronParams.precision)


def timing(data_root: str, repeats: int, precision: str | None = None) -> list[str]:
    """Fit time for 5 support images of 256² (features, fit, total) and apply time per 512² image."""
    import torch

    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support
    from napari_fewcell.engine.fewshot.features import Extractors

    fluo = Dataset(data_root, "dsb2018_fluo")
    isbi = Dataset(data_root, "isbi2012_membrane")
    crops = []
    for i in fluo.train:
        img, lab = fluo.images[i], fluo.labels[i]
        if min(img.shape[:2]) >= 256 and 0 < lab[:256, :256].sum() and len(crops) < 5:
            crops.append((img[:256, :256], lab[:256, :256], i))
    coelho = Dataset(data_root, "coelho2009_nih3t3_nuclei", train_limit=0)
    big = [im[:1024, :1024] for im in coelho.images.values() if min(im.shape[:2]) >= 1024]
    feat_s, fit_s, total_s, apply_s, load_s, big_s = [], [], [], [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        fx = Extractors(device="cpu", precision=precision)  # fresh: no cached features
        load_s.append(time.perf_counter() - t0)
        data = [support(im, lab, name=i) for im, lab, i in crops]
        t0 = time.perf_counter()
        model = run(fit_iter(data, PerceptronParams(seed=r), extractors=fx))
        total_s.append(time.perf_counter() - t0)
        feat_s.append(model.meta["features_seconds"])
        t0 = time.perf_counter()
        run(fit_iter(data, PerceptronParams(seed=r), extractors=fx))  # features cached: the perceptron alone
        fit_s.append(time.perf_counter() - t0)
        img = isbi.images[isbi.test[r % len(isbi.test)]]
        t0 = time.perf_counter()
        model.predict(img)  # with model.extractors, which never saw this image
        apply_s.append(time.perf_counter() - t0)
        if big:
            t0 = time.perf_counter()
            model.predict(big[r % len(big)])
            big_s.append(time.perf_counter() - t0)
    med = lambda v: f"{np.median(v):.2f} s (min {np.min(v):.2f}, max {np.max(v):.2f})"  # noqa: E731
    return [
        f"## Speed ({torch.get_num_threads()} CPU threads, all shipped extractors, {fx.precision})", "",
        "Extractors: " + ", ".join(f"`{s['name']}` ({s['sha256'][:12]})" for s in fx.spec), "",
        f"5 support images of 256² (crops of DSB fluo train images {', '.join(i for *_, i in crops)}), "
        f"{repeats} repeats, median:", "",
        "| step | time |", "|---|---|",
        f"| features of the 5 images (MSD extractors + extras) | {med(feat_s)} |",
        f"| **fit: logistic regression + BFGS on Dice** (features cached, as on a refit) | **{med(fit_s)}** |",
        f"| fit from scratch (features + fit) | {med(total_s)} |",
        f"| apply to one 512² image (features + perceptron) | {med(apply_s)} |",
        f"| loading the extractors (before a fit from scratch, once per session) | {med(load_s)} |",
    ] + ([f"| apply to one 1024² image (top-left 1024² of Coelho test images; features + perceptron) | "
          f"{med(big_s)} |"] if big else []) + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--shots", nargs="+", type=int, default=SHOTS)
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-rf", action="store_true", help="skip the random-forest baseline")
    ap.add_argument("--intensity", choices=("image", "support"), default="image",
                    help="PerceptronParams.intensity of the accuracy runs")
    ap.add_argument("--precision", choices=PRECISIONS, help="the extractors' arithmetic (default: the product's)")
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 draws, 2 test images, 1 and 5 shots")
    ap.add_argument("--out", default="benchmarks/results/fewshot.md")
    args = ap.parse_args()

    from napari_fewcell.engine.fewshot.features import Extractors
    from napari_fewcell.engine.nets.msd import shipped_names, shipped_path

    set_threads(args.threads)
    draws, shots = (2, [1, 5]) if args.quick else (args.draws, args.shots)
    source = trained_on()
    rep = [*report_header("napari-fewcell few-shot perceptron benchmark", args.quick, libs=("sklearn",)), ""]
    shas = {n: sha12(shipped_path(n)) for n in shipped_names()}
    if not args.timing_only:
        rep += [
            "## Leave-one-class-out Dice (foreground Dice %, mean over the test images of a draw; "
            f"median [quartiles] over {draws} draws of the support set)", "",
            "Support images are drawn from the train split; test images are only scored. The features come only "
            "from extractors not trained on the target data set. *Own extractor* is the target's own MSD network "
            "(trained on its train split's labels) applied directly: the paper's upper-bound line. "
            "*BFGS kept*: fits whose BFGS result had a lower Dice loss than the logistic start. The extractors "
            f"run in {cpu_precision(args.precision)}.", "",
            "| target | extractors used | shots | logistic | logistic + BFGS | RF baseline | BFGS kept | "
            "fit s (median) | own extractor |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in args.sets:
            log(f"{name}: loading")
            ds = Dataset(args.data, name)
            test_ids = ds.test[:2] if args.quick else ds.test
            loco = [n for n in shipped_names() if source[n] != name]
            own = [n for n in shipped_names() if source[n] == name]
            fx = Extractors(loco, device="cpu", cache_bytes=12 << 30, precision=args.precision)
            rf = None if args.no_rf else RFBaseline(args.threads)
            res = run_set(ds, fx, shots, draws, rf, test_ids, args.intensity)
            ub = f"{upper_bound(ds, own[0], test_ids):.1f}" if own else "—"
            for k, rows in res.items():
                rf_cell = q(rows["RF baseline"]) if rows["RF baseline"] else "—"
                rep.append(f"| {name} | {', '.join(f'{n} ({shas[n]})' for n in loco)} | {k} | {q(rows['logistic'])} | "
                           f"**{q(rows['logistic + BFGS'])}** | {rf_cell} | {rows['kept_bfgs']}/{len(rows['iters'])} "
                           f"| {np.median(rows['fit_s']):.2f} | {ub} |")
            del fx, rf
        rep.append("")
    if not args.no_timing:
        log("timing")
        rep += timing(args.data, 2 if args.quick else args.repeats, args.precision)
    finish_report(rep, args.out)


if __name__ == "__main__":
    main()
