"""Training one binary MSD feature extractor on a known class (paper 002 §4.3.1).

The train split of one data set (``split.csv``) is divided 80/20 by image into training and
validation images; random crops with flips, rotations and intensity jitter; soft Dice loss;
Adam; after every epoch the validation Dice (whole images, threshold 0.5) is measured, the best
state is kept, and training stops when it has not improved for ``patience`` epochs (or at
``max_epochs`` / ``max_minutes``). Test images are never read.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Generator

import numpy as np
import torch
import torch.nn.functional as F

from ..core.augment import STRONG, augment
from ..core.losses import soft_dice_loss
from ..core.options import check_seed, check_threads
from ..core.progress import Progress
from ..nets.msd import MSDConfig, MSDNet
from .datasets import load_training_sets
from .params import MSDTrainParams


@torch.inference_mode()
def _val_dice(net: MSDNet, images: list[np.ndarray], labels: list[np.ndarray]) -> float:
    net.eval()
    inter = total = 0.0
    for img, lab in zip(images, labels):
        pred = (net(torch.from_numpy(img)[None])[0, 0] > 0).numpy()
        inter += float((pred & (lab > 0)).sum())
        total += float(pred.sum() + (lab > 0).sum())
    net.train()
    return 2 * inter / max(total, 1.0)


def crop_batch(images: list, labels: list, sizes: np.ndarray, p: MSDTrainParams, rng: np.random.Generator):
    """``p.batch`` augmented crops (images drawn by their pixel count), cut to the smallest:
    (B, 3, c, c), (B, 1, c, c)."""
    xs, ys = [], []
    for _ in range(p.batch):
        i = int(rng.choice(len(images), p=sizes / sizes.sum()))
        img, lab = images[i], labels[i]
        H, W = lab.shape
        c = min(p.crop, H, W)
        y, x = rng.integers(0, H - c + 1), rng.integers(0, W - c + 1)
        a, b = augment(img[:, y : y + c, x : x + c], lab[y : y + c, x : x + c], rng, STRONG)
        xs.append(a)
        ys.append(b)
    c = min(a.shape[-1] for a in xs)
    x_t = torch.from_numpy(np.stack([a[:, :c, :c] for a in xs]))
    return x_t, torch.from_numpy(np.stack([b[:c, :c] for b in ys]).astype(np.float32))[:, None]


def train_msd_iter(p: MSDTrainParams) -> Generator[Progress, None, tuple[MSDNet, dict]]:
    """Train; yields progress per step; returns (best network in eval mode, card)."""
    check_seed(p.seed)
    check_threads(p.threads)
    if p.threads:
        torch.set_num_threads(p.threads)
    (ds,) = load_training_sets(p.data, [p.dataset])
    rng = np.random.default_rng(p.seed)
    torch.manual_seed(p.seed)
    order = rng.permutation(len(ds.ids))
    n_val = max(1, int(round(len(order) * p.val_fraction)))
    val, train = sorted(order[:n_val]), sorted(order[n_val:])
    timgs, tlabs = [ds.images[i] for i in train], [ds.labels[i] for i in train]
    vimgs, vlabs = [ds.images[i] for i in val], [ds.labels[i] for i in val]
    sizes = np.array([lab.size for lab in tlabs], float)
    net = MSDNet(MSDConfig(depth=p.depth, width=p.width, max_dilation=p.max_dilation)).train()
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    best, best_state, best_epoch, history = -1.0, None, 0, []
    t0 = time.time()
    total = p.max_epochs * p.steps_per_epoch
    yield Progress(0, total, "training")
    epoch = 0
    for epoch in range(1, p.max_epochs + 1):
        running = 0.0
        for step in range(p.steps_per_epoch):
            x_t, y_t = crop_batch(timgs, tlabs, sizes, p, rng)
            logits = net(x_t)
            loss = soft_dice_loss(logits, y_t)
            if p.bce_weight:
                loss = loss + p.bce_weight * F.binary_cross_entropy_with_logits(logits, y_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()
            done = (epoch - 1) * p.steps_per_epoch + step + 1
            yield Progress(done, total, f"epoch {epoch} loss {running / (step + 1):.4f} best val {max(best, 0):.4f}")
        dice = _val_dice(net, vimgs, vlabs)
        history.append({"epoch": epoch, "train_loss": round(running / p.steps_per_epoch, 4),
                        "val_dice": round(dice, 4), "minutes": round((time.time() - t0) / 60, 2)})
        if dice > best:
            best, best_epoch = dice, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if epoch - best_epoch >= p.patience or (time.time() - t0) / 60 > p.max_minutes:
            break
    net.load_state_dict(best_state)
    net.eval()
    card = {
        "kind": "binary MSD feature extractor (paper 002)",
        "trained_on": p.dataset,
        "train_ids": [ds.ids[i] for i in train],
        "val_ids": [ds.ids[i] for i in val],
        "params": dataclasses.asdict(p),
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "best_val_dice": round(best, 4),
        "history": history,
        "wall_minutes": round((time.time() - t0) / 60, 1),
        "torch": str(torch.__version__),
    }
    return net, card
