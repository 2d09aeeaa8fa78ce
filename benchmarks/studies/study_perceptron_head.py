#!/usr/bin/env python
"""Is a linear read-out what holds workflow 3's perceptron below the random forest on image types it never saw
(issue 21, item 1: "≥ RF + 3 on every fold")? study_bank_perceptron.py's protocol exactly (train images only, leave
one data set out: 5 support crops of 256² per draw from the first two thirds of the train split, scored on the last
third; foreground Dice %, median [quartiles] over draws; the same seeded draws), on the product's features (``msd``:
the MSD extractors not trained on the fold + the extras), read out by:

* ``linear``: the product's perceptron (logistic regression, then BFGS on Dice: ``fewshot.fit_iter``);
* ``mlpH``: one hidden layer of H ReLU units (a multilayer perceptron), trained by AdamW on mini-batches of the same
  support pixels against cross entropy + soft Dice, from seeded weights;
* ``forest``: a random forest of 50 trees on the same features (napari-convpaint's recipe: a forest on a network's
  maps);

and the ilastik-style RF on the crops' filters beside them (the issue's baseline).

    python studies/study_perceptron_head.py --data ../shared/data --range parent --threads 2 \
        --out results/perceptron_head_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import time

import numpy as np
import torch
from common import RFBaseline, fg_dice, finish_report, log, report_header
from study_bank_perceptron import (
    FOLDS,
    NORMS,
    Features,
    Fixed,
    crops,
    fold_rows,
    protocol_line,
    quartiles,
    split,
    study_parser,
)

HEADS = ("linear", "mlp32", "mlp64", "forest")


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(0)
    return mean, np.where((sd := X.std(0)) > 1e-6, sd, 1.0)


def fit_mlp(X: np.ndarray, y: np.ndarray, hidden: int, seed: int, steps: int = 300, batch: int = 4096):
    """A one-hidden-layer network on standardised pixels ``X`` (n, F) with binary ``y``: AdamW, cross entropy +
    soft Dice per mini-batch."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(len(yt), (min(batch, len(yt)),), generator=gen)
        z = net(xt[i])[:, 0]
        p = torch.sigmoid(z)
        dice = (2 * (p * yt[i]).sum() + 1) / (p.sum() + yt[i].sum() + 1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt[i]) + 1 - dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def mlp_labels(net, feats: np.ndarray, mean, sd) -> np.ndarray:
    f, h, w = feats.shape
    x = torch.from_numpy(((feats.reshape(f, -1).T - mean) / sd).astype(np.float32))
    with torch.inference_mode():
        return (net(x)[:, 0] > 0).numpy().reshape(h, w)


def score_draws(ds, pool, val, fe, a) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per draw, the mean foreground Dice on ``val`` of every head on the ``msd`` features, and of the RF on the
    crops' filters; and each head's fitting seconds."""
    from sklearn.ensemble import RandomForestClassifier

    from napari_fewcell.engine.core.image import as_image2d, intensity_range
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    rf = RFBaseline(a.threads)
    val_feats = {i: fe.all(ds.images[i])["msd"] for i in val}
    scores, secs = {h: [] for h in (*a.heads, "RF")}, {h: [] for h in a.heads}
    for d in range(a.draws):
        sup = crops(ds, pool, np.random.default_rng(d), parent=a.range == "parent")
        if a.range == "parent":
            feats = [fe.all(img, intensity_range(as_image2d(ds.images[i])))["msd"] for img, _, i in sup]
            sup = [(img, lab) for img, lab, _ in sup]
        else:
            feats = [fe.all(img)["msd"] for img, _ in sup]
        X = np.concatenate([f.reshape(f.shape[0], -1).T for f in feats])
        y = np.concatenate([lab.ravel() > 0 for _, lab in sup])
        take = np.random.default_rng(d).choice(len(y), min(len(y), PerceptronParams.max_pixels), replace=False)
        mean, sd = standardise(X[take])
        Xs = ((X[take] - mean) / sd).astype(np.float32)
        for head in a.heads:
            t0 = time.perf_counter()
            if head == "linear":
                data = [support(img, lab, name=f"crop {k}") for k, (img, lab) in enumerate(sup)]
                model = run(fit_iter(data, PerceptronParams(seed=d), extractors=Fixed(feats, fe.spec,
                                                                                      fe.fx.precision)))
                label = lambda f: model.labels_from(model.probabilities(f))  # noqa: E731
            elif head.startswith("mlp"):
                net = fit_mlp(Xs, y[take], int(head[3:]), d)
                label = lambda f: mlp_labels(net, f, mean, sd)  # noqa: E731
            else:
                forest = RandomForestClassifier(50, n_jobs=a.threads, random_state=d).fit(X[take], y[take])
                label = lambda f: forest.predict(f.reshape(f.shape[0], -1).T).reshape(f.shape[1:])  # noqa: E731
            secs[head].append(time.perf_counter() - t0)
            scores[head].append(np.mean([fg_dice(label(val_feats[i]), ds.labels[i]) for i in val]))
        Xr = np.concatenate([(f := rf.features(img)).reshape(-1, f.shape[-1]) for img, _ in sup])
        yr = np.concatenate([lab.ravel() for _, lab in sup])
        clf = rf.forest(Xr[take], yr[take], d)
        scores["RF"].append(np.mean([fg_dice(rf.predict(clf, rf.cached(i, ds.images[i])[0]), ds.labels[i])
                                     for i in val]))
        log(f"{ds.name} draw {d}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in scores.items()))
    return scores, secs


def run_fold(fold: str, a) -> list[str]:
    from common import Dataset

    ds = Dataset(a.data, fold)
    pool, val = split(ds, a)
    scores, secs = score_draws(ds, pool, val, Features(fold, FOLDS[fold], ("msd",)), a)
    q, cell = quartiles(scores)
    return [f"| {fold} | {len(pool)} / {len(val)} | " + " | ".join(cell(k) for k in (*a.heads, "RF")) + " | "
            + " | ".join(f"{q[k][1] - q['RF'][1]:+.1f}" for k in a.heads) + " | "
            + " / ".join(f"{np.median(secs[k]):.2f}" for k in a.heads) + " |"]


def main() -> None:
    ap = study_parser(__doc__, "results/perceptron_head_val.md")
    ap.add_argument("--range", choices=tuple(NORMS), default="parent")
    ap.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    a = ap.parse_args()
    rows, secs = fold_rows(a, run_fold)
    rep = report_header("The perceptron's read-out, leave one data set out (train images only)", False) + [
        protocol_line(a), "- intensity normalisation: " + NORMS[a.range], f"- wall time {secs:.0f} s", "",
        "| fold | pool / scored images | " + " | ".join(a.heads) + " | RF (filters) | "
        + " | ".join(f"{h} − RF" for h in a.heads) + " | fit s (median): " + " / ".join(a.heads) + " |",
        "|---" * (4 + 2 * len(a.heads)) + "|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
