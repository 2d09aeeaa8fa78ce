#!/usr/bin/env python
"""Variants of prompt segmentation studied on validation images (issue 20). --variant adabn (default): AdaBN at prompt
time (item 2): each fold's leave-one-out weights with their own BatchNorm statistics and with statistics taken
from the prompt image (8 seeded 256² crops, cumulative average; a copy of the network, the prompt and the images
embedded by it). --variant embedding: the fused path's forest also reads each pixel's 32-d embedding
(PromptParams.fuse_embedding; item 1's feature bank). --variant tent: TENT at prompt time (item 2): a copy of the
network whose BatchNorm scales and shifts alone are trained for a few steps to lower the entropy of the attention
output on the prompt image's pixels outside the box, anchored by the box itself (each step: one quadrant of the box
predicted from the other three, cross entropy), with the network's own BatchNorm statistics ("TENT") or the prompt
image's (after AdaBN, "AdaBN+TENT"). --variant checktrees: the self-check's forests at 50 trees (as the forest that
segments) and at PromptParams' default (fewer: faster), with the paths auto chose and the prompt's seconds.
--variant moco: a few MoCo steps on the prompt image's own crops at prompt time (item 2, paper 004), anchored by the
box (:func:`moco`); --variant anchor: the same steps without the InfoNCE term (the ablation). --variant trees: the
forest and fused paths with PromptParams.trees at its default and at the RF baseline's 100.
--variant balance: attention's keys weighted per class (PromptParams.balance 0.5 and 1: a thin class is not outvoted).
--variant sparse: auto takes attention alone, classes weighed alike, for a box with a sparse class (sparse_balance).
--variant tau: the attention's temperature at prompt time (PromptParams.tau: TAUS beside the weights' own).
--variant forestbalance: the fused and forest paths' class probabilities weighed per class (forest_balance).
Boxes and scored images as bench_generalise.py --split val
(seeded 64×64 boxes from train images, scored on other train images); the RF baseline beside.

    python benchmarks/studies/study_adabn.py --data ../shared/data --out benchmarks/results/adabn_val.md \
        FOLD=WEIGHTS [FOLD=WEIGHTS ...]
    python benchmarks/studies/study_adabn.py --variant embedding --out benchmarks/results/fuse_embedding_val.md ...
    python benchmarks/studies/study_adabn.py --variant tent --out benchmarks/results/tent_val.md ...
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and the benchmarks it reuses

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
    fold_study_parser,
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
from napari_fewcell.engine.prompt.annotated import quadrants
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


TENT_STEPS, TENT_LR, TENT_CROP, TENT_QUERIES = 10, 1e-2, 192, 4096
TAUS = (0.05, 0.2)  #: --variant tau: temperatures beside the weights' own (0.1 for every network here)


def tent_loss(net: EmbedNet, crop: torch.Tensor, by: int, bx: int, lab: torch.Tensor, tau: float,
              gen: torch.Generator) -> torch.Tensor:
    """Entropy of the attention output (keys: the box's pixels) on a sample of the crop's pixels outside the box
    + cross entropy of one quadrant of the box from the other three. ``lab``: (BOX, BOX) class indices."""
    emb = net.any_size(crop[None])[0]
    d = emb.shape[0]
    inside = torch.zeros(crop.shape[1:], dtype=torch.bool)
    inside[by : by + BOX, bx : bx + BOX] = True
    keys = emb[:, inside].T
    values = torch.nn.functional.one_hot(lab.reshape(-1), int(lab.max()) + 1).float()
    out = emb.reshape(d, -1).T[~inside.reshape(-1)]
    out = out[torch.randperm(len(out), generator=gen)[:TENT_QUERIES]]
    p = torch.softmax(out @ keys.T / tau, 1) @ values
    entropy = -(p * p.clamp_min(1e-6).log()).sum(1).mean()
    q = int(torch.randint(0, 4, (1,), generator=gen))
    held = torch.from_numpy(quadrants(BOX, BOX) == q)
    a = torch.softmax(keys[held] @ keys[~held].T / tau, 1) @ values[~held]
    return entropy + torch.nn.functional.nll_loss(a.clamp_min(1e-6).log(), lab.reshape(-1)[held])


def anchor_crops(image: torch.Tensor, box, lab: np.ndarray):
    """(class indices (BOX, BOX) of the box's labels, ``draw(gen)``) for the box anchor of :func:`tent_loss`: each
    draw is a crop of TENT_CROP² (at most the image) holding the box, and the box's (y, x) inside it."""
    (y, x), (_, H, W) = box, image.shape
    s = (min(TENT_CROP, H), min(TENT_CROP, W))

    def draw(gen: torch.Generator):
        y0 = int(torch.randint(max(0, y + BOX - s[0]), min(y, H - s[0]) + 1, (1,), generator=gen))
        x0 = int(torch.randint(max(0, x + BOX - s[1]), min(x, W - s[1]) + 1, (1,), generator=gen))
        return image[:, y0 : y0 + s[0], x0 : x0 + s[1]], y - y0, x - x0

    return torch.from_numpy(np.unique(lab, return_inverse=True)[1].reshape(BOX, BOX).astype(np.int64)), draw


def tent(model: EmbedNet, image: torch.Tensor, box, lab: np.ndarray, tau: float, adabn: bool, seed: int = 0):
    """A copy of ``model`` with its BatchNorm affine parameters tuned by :func:`tent_loss` on crops of ``image``
    that hold the box (``box`` = (y, x)), BatchNorm in eval mode (its statistics: the network's, or the image's)."""
    from napari_fewcell.engine.prompt.adapt import Adam

    net = adapt_batchnorm(model, image) if adabn else copy.deepcopy(model).eval()
    for prm in net.parameters():
        prm.requires_grad_(False)
    params = [t for m in net.modules() if isinstance(m, nn.BatchNorm2d) for t in (m.weight, m.bias)]
    for prm in params:
        prm.requires_grad_(True)
    opt, gen = Adam(params, lr=TENT_LR), torch.Generator().manual_seed(seed)
    lab, draw = anchor_crops(image, box, lab)
    for _ in range(TENT_STEPS):
        crop, by, bx = draw(gen)
        with torch.inference_mode(False), torch.enable_grad():
            tent_loss(net, crop, by, bx, lab, tau, gen).backward()
        opt.step()
    for prm in params:
        prm.requires_grad_(False)
    return net.eval()


MOCO_STEPS, MOCO_LR, MOCO_BATCH, MOCO_CROP, MOCO_QUEUE = 10, 1e-4, 8, 128, 256


def moco(model: EmbedNet, image: torch.Tensor, box, lab: np.ndarray, tau: float, seed: int = 0,
         contrast: float = 1.0):
    """A copy of ``model`` trained for a few MoCo steps on the prompt image's own crops (paper 004 at prompt time):
    InfoNCE of two augmented views of a crop against their key (momentum encoder) and a queue of earlier keys, plus
    the box anchor of :func:`tent_loss` (one quadrant from the other three), so the pixels' embedding keeps the
    prompt's classes apart. The projection head is new (the shipped weights hold none). ``contrast`` weighs the
    InfoNCE term (0: the box anchor alone, the ablation)."""
    from napari_fewcell.engine.prompt.adapt import Adam
    from napari_fewcell.engine.training.moco import PROJECTION_DIM, projection_head, two_views

    net = copy.deepcopy(model)
    proj = projection_head(net.config.base * 2**net.config.depth)
    key_net, key_proj = copy.deepcopy(net).eval(), copy.deepcopy(proj)
    params = [*net.parameters(), *proj.parameters()]
    for prm in params:
        prm.requires_grad_(True)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    queue = torch.nn.functional.normalize(torch.randn(MOCO_QUEUE, PROJECTION_DIM, generator=gen), dim=1)
    opt, img = Adam(params, lr=MOCO_LR), [image.numpy()]
    lab, draw = anchor_crops(image, box, lab)
    for _ in range(MOCO_STEPS):
        xq, xk = two_views(img, MOCO_BATCH, MOCO_CROP, net.multiple, rng)
        crop, by, bx = draw(gen)
        with torch.inference_mode(False), torch.enable_grad():
            net.train()
            q = torch.nn.functional.normalize(proj(net.bottleneck(xq).mean((2, 3))), dim=1)
            with torch.no_grad():
                k = torch.nn.functional.normalize(key_proj(key_net.bottleneck(xk).mean((2, 3))), dim=1)
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))
            net.eval()  # the anchor as the segmenter sees it: BatchNorm with its running statistics
            (contrast * loss + tent_loss(net, crop, by, bx, lab, tau, gen)).backward()
        opt.step()
        with torch.no_grad():
            for kk, qq in zip([*key_net.parameters(), *key_proj.parameters()], [*net.parameters(), *proj.parameters()]):
                kk.mul_(0.99).add_(qq.detach(), alpha=0.01)
            queue = torch.cat([k, queue[: -len(k)]])
    for prm in params:
        prm.requires_grad_(False)
    return net.eval()


def prompt_image(ds, src: str) -> torch.Tensor:
    """The normalised (3, H, W) prompt image."""
    arr = as_image2d(ds.images[src])
    return torch.from_numpy(normalize(arr, intensity_range(arr)))


def prepared(make, ds, box):
    """``prepare``'s (state, seconds, info) for the segmenter ``make()`` returns: the segmenter is made, the box
    embedded, its keys and its adaptation computed, all timed."""
    src, y, x = box

    def prep():
        seg = make()
        p = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
        seg.keys(p)
        seg.adapt(p)
        return seg, p

    (seg, prompt), secs = timed(prep)
    return (seg, prompt), secs, {"check": dict(prompt.check or {}), "path": prompt.path}


class TunedAtPrompt(bg.Fewcell):
    """A method whose network is tuned on the prompt image first (``tune``), timed with the prompt."""

    def tune(self, image: torch.Tensor, box, lab: np.ndarray, tau: float) -> EmbedNet:
        raise NotImplementedError

    def prepare(self, ds, box):
        src, y, x = box
        image = prompt_image(ds, src)
        tau = Segmenter(PromptParams(**self.params), model=self.model).tau

        def make():  # timed with the prompt: tuning the network is part of its cost
            lab = np.asarray(ds.labels[src])[y : y + BOX, x : x + BOX]
            return Segmenter(PromptParams(**self.params), model=self.tune(image, (y, x), lab, tau))

        return prepared(make, ds, box)


class Tent(TunedAtPrompt):
    def __init__(self, model, weights: str, path: str, has_adapt: bool, adabn: bool):
        super().__init__(model, weights, path, has_adapt)
        self.adabn = adabn

    def tune(self, image, box, lab, tau):
        return tent(self.model, image, box, lab, tau, self.adabn)


class MoCoAtPrompt(TunedAtPrompt):
    def __init__(self, model, weights: str, path: str, has_adapt: bool, contrast: float = 1.0):
        super().__init__(model, weights, path, has_adapt)
        self.contrast = contrast

    def tune(self, image, box, lab, tau):
        return moco(self.model, image, box, lab, tau, contrast=self.contrast)


class CheckTrees(bg.Fewcell):
    def __init__(self, model, weights: str, path: str, has_adapt: bool, trees: int, key: str = "check_trees"):
        super().__init__(model, weights, path, has_adapt)
        self.params[key] = trees


class Embedding(bg.Fewcell):
    def __init__(self, model, weights: str, path: str, has_adapt: bool):
        super().__init__(model, weights, path, has_adapt)
        self.params["fuse_embedding"] = True


class AdaBN(bg.Fewcell):
    def prepare(self, ds, box):
        seg = Segmenter(PromptParams(**self.params), model=adapt_batchnorm(self.model, prompt_image(ds, box[0])))
        return prepared(lambda: seg, ds, box)  # the statistics are taken before the clock starts, as before


def choice_line(fold: str, sc: dict) -> str:
    parts = [f"{m}: {' '.join(str(i.get('path')) for i in s.info)} ({np.mean(s.prep):.2f} s)" for m, s in sc.items()
             if any(i.get("path") for i in s.info)]
    return f"- {fold}: " + "; ".join(parts)


def variant_methods(variant: str, model, w: str) -> dict:
    """The methods a variant compares on one fold (before the RF, which every variant has)."""
    if variant == "adabn":
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        methods.update({f"AdaBN {p}": AdaBN(model, w, p, True) for p in ("none", "auto")})
    elif variant == "tent":
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        for name, adabn in (("TENT", False), ("AdaBN+TENT", True)):
            methods.update({f"{name} {p}": Tent(model, w, p, True, adabn) for p in ("none", "auto")})
    elif variant == "trees":  # the forest that segments: PromptParams.trees against the RF's 100
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("forest", "fuse", "auto")}
        methods.update({f"{p}, 100 trees": CheckTrees(model, w, p, True, 100, "trees")
                        for p in ("forest", "fuse", "auto")})
    elif variant == "moco":
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        methods.update({f"MoCo {p}": MoCoAtPrompt(model, w, p, True) for p in ("none", "auto")})
    elif variant == "anchor":  # the ablation of "moco": the box anchor alone, the same steps
        methods = {"none": bg.Fewcell(model, w, "none", True)}
        methods.update({f"anchor {p}": MoCoAtPrompt(model, w, p, True, contrast=0.0) for p in ("none", "auto")})
    elif variant == "balance":  # attention's keys weighted per class (PromptParams.balance)
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        for b in (0.5, 1.0):
            for p in ("none", "auto"):
                methods[f"balance {b:g} {p}"] = m = bg.Fewcell(model, w, p, True)
                m.params["balance"] = b
    elif variant == "forestbalance":  # the forests' classes weighed alike (PromptParams.forest_balance)
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("fuse", "auto")}
        for b in (0.5, 1.0):
            for p in ("fuse", "auto"):
                methods[f"forest balance {b:g} {p}"] = m = bg.Fewcell(model, w, p, True)
                m.params["forest_balance"] = b
    elif variant == "sparse":  # auto: attention alone, balanced, for a box with a sparse class (sparse_balance)
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        methods["auto, sparse boxes balanced"] = m = bg.Fewcell(model, w, "auto", True)
        m.params["sparse_balance"] = 1.0
    elif variant == "tau":  # the attention's temperature at prompt time (PromptParams.tau; None: the weights')
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "auto")}
        for t in TAUS:
            for p in ("none", "auto"):
                methods[f"tau {t:g} {p}"] = m = bg.Fewcell(model, w, p, True)
                m.params["tau"] = t
    elif variant == "checktrees":
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "fuse")}
        methods.update({f"auto, check {t} trees": CheckTrees(model, w, "auto", True, t)
                        for t in (50, PromptParams.check_trees)})
    else:
        methods = {p: bg.Fewcell(model, w, p, True) for p in ("none", "fuse", "auto")}
        methods.update({f"embedding {p}": Embedding(model, w, p, True) for p in ("fuse", "auto")})
    return methods


def main() -> None:
    ap = fold_study_parser(__doc__, boxes=3)
    ap.add_argument("--variant", default="adabn",
                    choices=["adabn", "embedding", "tent", "checktrees", "moco", "anchor", "trees", "balance",
                             "forestbalance", "tau", "sparse"])
    args = ap.parse_args()
    if not args.folds:
        ap.error("give at least one FOLD=WEIGHTS")
    set_threads(2)
    rf, rows, choices = RFBaseline(2), [], []
    for item in args.folds:
        fold, _, w = item.partition("=")
        set_name, folder = split_name(fold)
        ds = Dataset(args.data, set_name, folder=folder or "labels")
        boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(args.boxes)]
        ids = bg.scored_ids(ds, boxes, args.split, args.max_test)
        model = load_model(w)
        methods = variant_methods(args.variant, model, w)
        methods["RF"] = ForestPrompt(rf)
        sc = score_prompts(ds, boxes, ids, methods)
        rows.append((fold, w, {m: s.mean() for m, s in sc.items()}, {m: mean_sd(s.per_box()) for m, s in sc.items()}))
        choices.append(choice_line(fold, sc))
    cols = list(rows[0][2])
    title = {"adabn": "AdaBN at prompt time", "embedding": "The fused forest with the embedding",
             "tent": f"TENT at prompt time ({TENT_STEPS} steps, lr {TENT_LR}, crops of {TENT_CROP}²)",
             "checktrees": "The self-check's forests: 50 trees or fewer",
             "moco": f"MoCo at prompt time ({MOCO_STEPS} steps of {MOCO_BATCH} crops of {MOCO_CROP}², lr {MOCO_LR}, "
                     "with the box anchor)",
             "balance": "Attention's keys weighted per class: n_c^-balance each (PromptParams.balance)",
             "forestbalance": "The forests' classes weighed alike: n_c^-forest_balance each "
                              "(PromptParams.forest_balance)",
             "sparse": "Auto with attention alone, its classes weighed alike, for a box with a class under 10 % "
                       "(PromptParams.sparse_balance 1)",
             "tau": f"The attention's temperature at prompt time: the weights' own (0.1) and "
                    f"{', '.join(map(str, TAUS))}",
             "trees": f"The forest that segments: {PromptParams.trees} trees (the default) or 100 (the RF's)",
             "anchor": f"The box anchor alone at prompt time ({MOCO_STEPS} steps, lr {MOCO_LR}; the ablation of "
                       "MoCo at prompt time)"}[args.variant]
    scored = "validation images" if args.split == "val" else "test images"
    lines = report_header(f"{title} ({scored})", False) + [
        "", "| fold | weights | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    lines += [f"| {f} | `{w}` | " + " | ".join(t[m] for m in cols) + " |" for f, w, _, t in rows]
    mean = {m: np.mean([r[2][m] for r in rows]) for m in cols}
    lines += ["| **mean** | | " + " | ".join(f"**{mean[m]:.2f}**" for m in cols) + " |"]
    lines += ["", "Per box (in seed order): the path each method took, and its prompt's seconds (embedding, keys, "
              "self-check and fit; the mean over the fold's boxes):", "", *choices]
    finish_report(lines, args.out)


if __name__ == "__main__":
    main()
