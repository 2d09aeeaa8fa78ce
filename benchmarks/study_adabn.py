#!/usr/bin/env python
"""Variants of prompt segmentation studied on validation images (issue 20). --variant adabn (default): AdaBN at prompt
time (item 2): each fold's leave-one-out weights with their own BatchNorm statistics and with statistics taken
from the prompt image (8 seeded 256² crops, cumulative average; a copy of the network, the prompt and the images
embedded by it). --variant embedding: the fused path's forest also reads each pixel's 32-d embedding
(PromptParams.fuse_embedding; item 1's feature bank). Boxes and scored images as bench_generalise.py --split val
(seeded 64×64 boxes from train images, scored on other train images); the RF baseline beside.

    python benchmarks/study_adabn.py --data ../shared/data --out benchmarks/results/adabn_val.md \
        FOLD=WEIGHTS [FOLD=WEIGHTS ...]
    python benchmarks/study_adabn.py --variant embedding --out benchmarks/results/fuse_embedding_val.md ...
"""
from __future__ import annotations

import argparse
import copy

import bench_generalise as bg
import numpy as np
import torch
from common import (
    BOX,
    Dataset,
    ForestPrompt,
    RFBaseline,
    finish_report,
    mean_sd,
    report_header,
    score_prompts,
    seeded_box,
    set_threads,
    timed,
)
from torch import nn

from napari_fewcell.engine.core.image import as_image2d, intensity_range, normalize
from napari_fewcell.engine.nets.unet import EmbedNet, load_model
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.training.datasets import split_name


def adapt_batchnorm(model: EmbedNet, image: torch.Tensor, size: int = 256, crops: int = 8, seed: int = 0):
    """A copy of ``model`` whose BatchNorm statistics are those of ``image`` (normalised (3, H, W))."""
    net = copy.deepcopy(model)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the crops
    gen = torch.Generator().manual_seed(seed)
    _, H, W = image.shape
    h, w = min(size, H), min(size, W)
    net.train()
    with torch.no_grad():
        for _ in range(crops):
            y, x = (int(torch.randint(0, n + 1, (1,), generator=gen)) for n in (H - h, W - w))
            net.any_size(image[None, :, y : y + h, x : x + w])
    return net.eval()


class Embedding(bg.Fewcell):
    def __init__(self, model, weights: str, path: str, has_adapt: bool):
        super().__init__(model, weights, path, has_adapt)
        self.params["fuse_embedding"] = True


class AdaBN(bg.Fewcell):
    def prepare(self, ds, box):
        src, y, x = box
        arr = as_image2d(ds.images[src])
        seg = Segmenter(PromptParams(**self.params),
                        model=adapt_batchnorm(self.model, torch.from_numpy(normalize(arr, intensity_range(arr)))))

        def prep():
            p = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
            seg.keys(p)
            seg.adapt(p)
            return p

        prompt, secs = timed(prep)
        return (seg, prompt), secs, {"check": dict(prompt.check or {}), "path": prompt.path}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--boxes", type=int, default=3)
    ap.add_argument("--max-test", type=int, default=3)
    ap.add_argument("--variant", choices=["adabn", "embedding"], default="adabn")
    ap.add_argument("folds", nargs="+", metavar="FOLD=WEIGHTS")
    args = ap.parse_args()
    set_threads(2)
    rf, rows = RFBaseline(2), []
    for item in args.folds:
        fold, _, w = item.partition("=")
        set_name, folder = split_name(fold)
        ds = Dataset(args.data, set_name, folder=folder or "labels")
        boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(args.boxes)]
        ids = bg.scored_ids(ds, boxes, "val", args.max_test)
        model = load_model(w)
        if args.variant == "adabn":
            methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
            methods.update({f"AdaBN {p}": AdaBN(model, w, p, True) for p in ("none", "auto")})
        else:
            methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "fuse", "auto")}
            methods.update({f"embedding {p}": Embedding(model, w, p, True) for p in ("fuse", "auto")})
        methods["RF"] = ForestPrompt(rf)
        sc = score_prompts(ds, boxes, ids, methods)
        rows.append((fold, w, {m: s.mean() for m, s in sc.items()}, {m: mean_sd(s.per_box()) for m, s in sc.items()}))
    cols = list(rows[0][2])
    title = "AdaBN at prompt time" if args.variant == "adabn" else "The fused forest with the embedding"
    lines = report_header(f"{title} (validation images)", False) + [
        "", "| fold | weights | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    lines += [f"| {f} | `{w}` | " + " | ".join(t[m] for m in cols) + " |" for f, w, _, t in rows]
    mean = {m: np.mean([r[2][m] for r in rows]) for m in cols}
    lines += ["| **mean** | | " + " | ".join(f"**{mean[m]:.2f}**" for m in cols) + " |"]
    finish_report(lines, args.out)


if __name__ == "__main__":
    main()
