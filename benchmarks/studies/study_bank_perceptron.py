#!/usr/bin/env python
"""Which features should workflow 3's perceptron read (issue 21, item 1; issue 20, item 1)? A study on TRAIN images
only, leave one data set out: per fold, 5 support crops of 256² (seeded, each holding both classes) are drawn from
the first two thirds of the train split, a perceptron (the product's fit: logistic regression, then BFGS on Dice)
is fitted on each feature set, and it is scored on the last third of the train split (foreground Dice %, mean over
those images; median and quartiles over the draws). The ilastik-style random forest on the same crops' pixels is
beside it. Feature sets:

* ``msd``: the product today: the MSD extractors not trained on the fold (leave one class out) + the extras
  (normalised input, ``multiscale_basic_features`` σ 1–16);
* ``msd+net``: the same + the prompt network's per-pixel embedding (32, L2-normalised) and the maps its head reads
  (16): the weights must never have seen the fold (checked on their card);
* ``net``: the extras + the network's 48 maps, no MSD extractor (the network alone is 3–4× cheaper than three MSD
  extractors);
* ``msd+attn``: ``msd`` + the prompt network's attention over the support's pixels (64 k-means prototypes per class,
  as the prompt path): the foreground probability and its clipped log-odds. A support crop's own maps attend to the
  OTHER crops only (leave one crop out, as the fused forest learns from held-out attention), a scored image's to all;
* ``msd-fine``: ``msd`` without the extras' smoothed intensity above prompt/filters.SMOOTH_SIGMA_MAX (σ 4: what the
  prompt's forests read since 2026-12-06); ``--sets msd msd-fine`` compares it with today's alone.

    python studies/study_bank_perceptron.py --data ../shared/data --out results/bank_perceptron_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

import argparse
import time

import numpy as np
from cards import unseen, weights_card
from common import Dataset, RFBaseline, fg_dice, finish_report, loco_names, log, report_header, set_threads, sha12

from napari_fewcell.engine.fewshot.features import SIGMAS
from napari_fewcell.engine.prompt.filters import SMOOTH_SIGMA_MAX

SHIPPED = "../src/napari_fewcell/weights/fewcell_embed_v1.pt"
FOLDS = {"isbi2012_membrane": "weights/lodo_isbi_episodic.pt", "dsb2018_he": "weights/lodo_dsb2018he_episodic.pt",
         "usiigaci_phase_contrast_cells": SHIPPED, "tem_myelinated_axons": SHIPPED,
         "coelho2009_nih3t3_nuclei": SHIPPED, "isbi2014_cervical_synth_cells": SHIPPED}
SETS = ("msd", "msd+net", "net")  #: the sets of the report (--sets picks among ALL_SETS)
ALL_SETS = (*SETS, "msd-fine", "msd+attn")
COARSE = tuple(f"smooth:{s}" for s in SIGMAS if s > SMOOTH_SIGMA_MAX)  #: the extras "msd-fine" leaves out
CROP, SHOTS = 256, 5
NORMS = {"image": "each image by its own range (a support crop given as an image of its own)",
         "support": "every image (support crops and scored images) by the support crops' pooled range",
         "parent": "each support crop by the range of the image it was cut from, each scored image by its own (the "
                   "product, when the support is a box in an image: fewshot.support(image, labels, boxes))"}


class Features:
    """Per-pixel features of whole images, (F, H, W) float32, for the three feature sets."""

    def __init__(self, fold: str, weights: str, sets=SETS):
        import torch

        from napari_fewcell.engine.fewshot.features import Extractors
        from napari_fewcell.engine.nets.unet import load_model

        self.torch = torch
        self.fx = Extractors(loco_names(fold), device="cpu", cache_bytes=0)  # each image's features are used once
        self.net = load_model(weights)
        self.spec, self.n_features, self.sets = self.fx.spec, 0, sets  # what fit_iter records; the sets to compute

    def net_maps(self, image, rng=None) -> np.ndarray:
        from napari_fewcell.engine.core.image import as_image2d, intensity_range, normalize

        arr = as_image2d(image)
        t = self.torch.from_numpy(normalize(arr, rng or intensity_range(arr)))[None]
        with self.torch.inference_mode():
            body = self.net.any_size(t, self.net.body)
            emb = self.torch.nn.functional.normalize(self.net.head(body), dim=1)
        return self.torch.cat([emb, body], 1)[0].numpy()

    def all(self, image, rng=None) -> dict[str, np.ndarray]:
        """The feature sets of an image normalised by its own intensity range, or by ``rng`` (low, high)."""
        from napari_fewcell.engine.core.image import as_image2d, normalize
        from napari_fewcell.engine.fewshot.features import EXTRAS

        if rng is None:
            msd = self.fx.features(image)
        else:
            msd = self.fx.region(normalize(as_image2d(image), rng))
        coarse = [len(msd) - len(EXTRAS) + i for i, n in enumerate(EXTRAS) if n in COARSE]
        out = {"msd": msd, "msd-fine": np.delete(msd, coarse, axis=0)}
        if set(self.sets) & {"msd+net", "net", "msd+attn"}:
            net = self.net_maps(image, rng)
            out |= {"msd+net": np.concatenate([msd, net]), "net": np.concatenate([msd[-len(EXTRAS):], net]),
                    "emb": net[: self.net.config.embed_dim]}
        return out

    def attention_maps(self, query: np.ndarray, embs: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
        """(2, H, W): the foreground probability of attention from ``query``'s embedding (D, H, W) to the pixels of
        ``embs`` (each (D, h, w)) labelled ``labels``, and its log-odds clipped to ±6."""
        from napari_fewcell.engine.nets import attention

        torch = self.torch
        keys = torch.cat([torch.from_numpy(e.reshape(e.shape[0], -1).T) for e in embs])
        keys = attention.prototype_keys(keys, np.concatenate([lab.ravel() for lab in labels]).astype(np.int64), 64)
        d, h, w = query.shape
        with torch.inference_mode():
            p = attention.attend(torch.from_numpy(query.reshape(d, -1).T.copy()), keys, float(self.net.config.tau))
        fg = p[:, -1].numpy().clip(1e-6, 1 - 1e-6).reshape(h, w).astype(np.float32)
        return np.stack([fg, np.clip(np.log(fg / (1 - fg)), -6, 6)])


class Fixed:
    """An extractor stand-in for fit_iter: the features of each support image, computed beforehand."""

    def __init__(self, feats: list[np.ndarray], spec, precision: str = "float32"):
        self.feats, self.spec, self.n_features, self.i = feats, spec, feats[0].shape[0], 0
        self.precision = precision  #: what the features were computed in (fit_iter records it)

    def features(self, image, rng=None):
        self.i += 1
        return self.feats[self.i - 1]

    @staticmethod
    def n_tiles(shape) -> int:
        """One: the support crops (256²) are read whole, never box by box (``fewshot.support_set``)."""
        return 1


def crops(ds: Dataset, pool: list[str], rng: np.random.Generator,
          parent: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """SHOTS seeded crops of CROP² (the whole image if smaller), each holding both classes (``parent``: each also
    with the id of the image it was cut from)."""
    out = []
    while len(out) < SHOTS:
        i = pool[rng.integers(len(pool))]
        img, lab = ds.images[i], ds.labels[i]
        h, w = lab.shape
        y, x = rng.integers(0, max(1, h - CROP + 1)), rng.integers(0, max(1, w - CROP + 1))
        c = lab[y : y + CROP, x : x + CROP]
        if 0.02 < c.mean() < 0.98:
            out.append((img[y : y + CROP, x : x + CROP], c, *([i] if parent else [])))
    return out


def pooled_range(images) -> tuple[np.ndarray, np.ndarray]:
    """One intensity range (low, high percentiles) of all the support images' pixels together."""
    from napari_fewcell.engine.core.image import as_image2d, intensity_range

    arrs = [as_image2d(i) for i in images]
    pix = np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrs])
    return intensity_range(pix[:, None, :])


def score_draws(ds: Dataset, pool: list[str], val: list[str], fe, sets, a) -> dict[str, list[float]]:
    """Per draw, the mean foreground Dice on ``val`` of a perceptron fitted on each feature set of ``sets``
    (``fe.all(image, rng)`` gives them; ``fe.spec`` is recorded) and of the RF on the same crops' pixels."""
    from napari_fewcell.engine.core.image import as_image2d, intensity_range
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    norm = getattr(a, "range", "image")
    rf, pooled = RFBaseline(a.threads), norm == "support"
    val_feats = {} if pooled else {i: fe.all(ds.images[i]) for i in val}
    scores = {s: [] for s in (*sets, "RF")}
    for d in range(a.draws):
        sup = crops(ds, pool, np.random.default_rng(d), parent=norm == "parent")
        rng = pooled_range([img for img, *_ in sup]) if pooled else None
        if norm == "parent":
            feats = [fe.all(img, intensity_range(as_image2d(ds.images[i]))) for img, _, i in sup]
            sup = [(img, lab) for img, lab, _ in sup]
        else:
            feats = [fe.all(img, rng) for img, _ in sup]
        if pooled:
            val_feats = {i: fe.all(ds.images[i], rng) for i in val}
        if "msd+attn" in sets:
            with_attention(fe, sup, feats, val_feats)
        for s in sets:
            data = [support(img, lab, name=f"crop {k}") for k, (img, lab) in enumerate(sup)]
            model = run(fit_iter(data, PerceptronParams(seed=d), extractors=Fixed([f[s] for f in feats], fe.spec,
                                                                                  fe.fx.precision)))
            scores[s].append(np.mean([fg_dice(model.labels_from(model.probabilities(val_feats[i][s])), ds.labels[i])
                                      for i in val]))
        X = np.concatenate([(f := rf.features(img)).reshape(-1, f.shape[-1]) for img, _ in sup])
        y = np.concatenate([lab.ravel() for _, lab in sup])
        take = np.random.default_rng(d).choice(len(y), min(len(y), PerceptronParams.max_pixels), replace=False)
        clf = rf.forest(X[take], y[take], d)
        scores["RF"].append(np.mean([fg_dice(rf.predict(clf, rf.cached(i, ds.images[i])[0]), ds.labels[i])
                                     for i in val]))
        log(f"{ds.name} draw {d}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in scores.items()))
    return scores


def with_attention(fe, sup, feats: list[dict], val_feats: dict) -> None:
    """Adds "msd+attn" to each support crop's and scored image's feature sets (support crops: leave one crop out)."""
    embs, labs = [f["emb"] for f in feats], [lab for _, lab, *_ in sup]
    for k, f in enumerate(feats):
        others = [i for i in range(len(feats)) if i != k]
        maps = fe.attention_maps(f["emb"], [embs[i] for i in others], [labs[i] for i in others])
        f["msd+attn"] = np.concatenate([f["msd"], maps])
    for f in val_feats.values():
        f["msd+attn"] = np.concatenate([f["msd"], fe.attention_maps(f["emb"], embs, labs)])


def quartiles(scores: dict[str, list[float]]) -> tuple[dict, callable]:
    """({name: [q25, median, q75]}, a formatter of one name's cell: "median [q25, q75]")."""
    q = {k: np.percentile(v, [25, 50, 75]) for k, v in scores.items()}
    return q, lambda k: f"{q[k][1]:.1f} [{q[k][0]:.1f}, {q[k][2]:.1f}]"


def split(ds: Dataset, a) -> tuple[list[str], list[str]]:
    """The support pool (the first two thirds of the train split) and the scored images (the rest, at most
    --max-val)."""
    cut = max(1, (2 * len(ds.train)) // 3)
    return ds.train[:cut], ds.train[cut:][: a.max_val]


def run_fold(fold: str, weights: str, a) -> list[str]:
    ds = Dataset(a.data, fold)
    ok, checked = unseen(weights_card(weights), fold)
    if not ok:
        raise SystemExit(f"{weights} saw {fold}: {checked}")
    pool, val = split(ds, a)
    sets = a.sets
    q, cell = quartiles(score_draws(ds, pool, val, Features(fold, weights, sets), sets, a))
    return [f"| {fold} | `{weights.split('/')[-1]}` ({sha12(weights)}) | {', '.join(loco_names(fold))} | "
            f"{len(pool)} / {len(val)} | " + " | ".join(cell(k) for k in (*sets, "RF")) + " | "
            + " | ".join(f"{q[k][1] - q['msd'][1]:+.1f}" for k in sets if k != "msd") + " |"]


def study_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options of this protocol (data, folds, draws, scored images, threads, report), shared by the studies that
    use it."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--folds", nargs="+", default=list(FOLDS))
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--max-val", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=out)
    return ap


def fold_rows(a, run_fold) -> tuple[list[str], float]:
    """Every fold's rows of a study's table, ``run_fold(fold, a)`` each (torch's threads set first), and the wall
    seconds they took."""
    set_threads(a.threads)
    t0 = time.perf_counter()
    rows = []
    for fold in a.folds:
        rows += run_fold(fold, a)
    return rows, time.perf_counter() - t0


def protocol_line(a) -> str:
    """The report's line that says what was drawn and scored."""
    return (f"- {a.draws} draws of {SHOTS} support crops of {CROP}² from the first two thirds of each train split; "
            "scored on the last third (at most --max-val images); foreground Dice %, median [quartiles] over draws")


def main() -> None:
    ap = study_parser(__doc__, "results/bank_perceptron_val.md")
    ap.add_argument("--range", choices=tuple(NORMS), default="image",
                    help="normalise each image by its own intensity range, every image (support crops and scored "
                         "images) by the support crops' pooled range, or each support crop by its parent image's "
                         "range")
    ap.add_argument("--sets", nargs="+", choices=ALL_SETS, default=list(SETS),
                    help="feature sets to compare (the first must be msd, today's)")
    a = ap.parse_args()
    if a.sets[0] != "msd":
        ap.error("--sets must start with msd (today's set, the one the others are compared with)")
    rows, secs = fold_rows(a, lambda fold, a: run_fold(fold, FOLDS[fold], a))
    rep = report_header("Perceptron features, leave one data set out (train images only)", False) + [
        protocol_line(a), "- intensity normalisation: " + NORMS[a.range], f"- wall time {secs:.0f} s", "",
        "| fold | network weights (never saw the fold) | MSD extractors | pool / scored images | msd (today) | "
        + "".join(f"{k} | " for k in a.sets[1:]) + "RF | " + "".join(f"{k} − msd | " for k in a.sets[1:]),
        "|---" * (4 + 2 * len(a.sets)) + "|", *rows, ""]
    finish_report(rep, a.out)


if __name__ == "__main__":
    main()
