"""Episodic pre-training of the embedding network (paper 000 §3.1–3.2, Eq. 3).

An episode takes a 64×64 prompt box (with 32 px of context) from one training image
and a query crop from another image of the same data set; the query's pixels attend
to the prompt's pixels (Eq. 1–2) and the loss is the cross entropy of the attention
output against the query's labels (Eq. 3). Only ``split.csv == train`` images are read,
so the ISBI2012 test images 015–029 are never seen.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Generator

import numpy as np
import torch
import torch.nn.functional as F

from ..core.augment import STRONG, augment
from ..core.errors import FewcellError
from ..core.losses import soft_dice
from ..core.progress import Progress
from ..nets.unet import EmbedNet, NetConfig, load_model, save_weights
from .datasets import DataSet, load_training_sets

DATASETS = {"isbi2012_membrane": 0.35, "dsb2018_fluo": 0.30, "dsb2018_he": 0.20, "stardist_sample2d": 0.15}


@dataclasses.dataclass
class PretrainParams:
    data: str = "../shared/data"
    datasets: tuple[str, ...] = tuple(DATASETS)
    steps: int = 3000
    batch: int = 8
    crop: int = 128  #: query crop edge
    box: int = 64  #: prompt box edge
    context: int = 32  #: prompt context on each side
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  #: torch threads (0 = torch's default)
    base: int = 16
    embed_dim: int = 32
    tau: float = 0.1
    dice_weight: float = 0.0  #: weight of a soft-Dice term (mean over classes) added to the cross entropy
    invert_p: float = 0.2  #: probability of inverting prompt and query together
    init: str | None = None  #: weights file to start from (warm start); None = random init
    dataset_weights: tuple[float, ...] | None = None  #: sampling weight per data set (default: DATASETS)
    query_pixels: int = 4096  #: query pixels scored per episode (random subset, for speed)
    key_pixels: int = 1024  #: prompt pixels attended to per episode (random subset, for speed)


def _crop(img, lab, size, rng, y=None, x=None):
    H, W = lab.shape
    y = rng.integers(0, H - size + 1) if y is None else y
    x = rng.integers(0, W - size + 1) if x is None else x
    return img[:, y : y + size, x : x + size], lab[y : y + size, x : x + size]


def sample_episode(sets: list[DataSet], weights: np.ndarray, p: PretrainParams, rng: np.random.Generator):
    """(query image, query labels, prompt region, prompt-box labels) for one episode."""
    s = sets[rng.choice(len(sets), p=weights)]
    n = len(s.images)
    a = rng.integers(n)
    b = (a + 1 + rng.integers(n - 1)) % n if n > 1 else a
    region = p.box + 2 * p.context
    for _ in range(30):  # a prompt box holding both classes
        pi, pl = _crop(s.images[a], s.labels[a], region, rng)
        box = pl[p.context : p.context + p.box, p.context : p.context + p.box]
        if 0.03 < box.mean() < 0.97:
            break
    qi, ql = _crop(s.images[b], s.labels[b], p.crop, rng)
    pi, pl = augment(pi, pl, rng, STRONG)
    qi, ql = augment(qi, ql, rng, STRONG)
    if rng.random() < p.invert_p:  # invert both: the prompt, not the appearance, says what is foreground
        pi, qi = 1 - pi, 1 - qi
    if rng.random() < 0.3:
        perm = rng.permutation(3)
        pi, qi = pi[perm], qi[perm]
    c = p.context
    return qi, ql, pi, pl[c : c + p.box, c : c + p.box]


def episode_loss(model: EmbedNet, batch, p: PretrainParams, generator: torch.Generator | None = None) -> torch.Tensor:
    qi, ql, pi, pl = batch
    B = qi.shape[0]
    emb = model(torch.cat([qi, pi]))
    c = p.context
    x = emb[:B].flatten(2).transpose(1, 2)  # (B, N, D)
    k = emb[B:, :, c : c + p.box, c : c + p.box].flatten(2).transpose(1, 2)  # (B, M, D)
    y = ql.flatten(1).long()
    v = F.one_hot(pl.flatten(1).long(), 2).float()  # (B, M, 2)
    qsel = torch.rand(B, x.shape[1], generator=generator).argsort(1)[:, : p.query_pixels]
    ksel = torch.rand(B, k.shape[1], generator=generator).argsort(1)[:, : p.key_pixels]
    x = torch.take_along_dim(x, qsel[..., None], 1)[:, None]
    y = torch.take_along_dim(y, qsel, 1)
    k = torch.take_along_dim(k, ksel[..., None], 1)[:, None]
    v = torch.take_along_dim(v, ksel[..., None], 1)[:, None]
    o = F.scaled_dot_product_attention(x, k, v, scale=1.0 / p.tau)[:, 0]  # (B, n, 2)
    loss = F.nll_loss(torch.log(o.clamp_min(1e-6)).transpose(1, 2), y)
    if p.dice_weight:
        t = F.one_hot(y, 2).float()
        loss = loss + p.dice_weight * (1 - soft_dice(o, t, dim=1).mean())  # Dice per episode and class
    return loss


def pretrain_iter(p: PretrainParams, out: str | Path) -> Generator[Progress, None, EmbedNet]:
    """Train and save the embedding network; yields Progress every 10 steps."""
    t0 = time.time()
    torch.manual_seed(p.seed)
    gen = torch.Generator().manual_seed(p.seed)
    if p.threads:
        torch.set_num_threads(p.threads)
    rng = np.random.default_rng(p.seed)
    sets = load_training_sets(p.data, p.datasets)
    w = np.array(p.dataset_weights or [DATASETS.get(s.name, 1.0) for s in sets], dtype=float)
    w = w / w.sum()
    config = NetConfig(base=p.base, embed_dim=p.embed_dim, tau=p.tau)
    model = load_model(p.init) if p.init else EmbedNet(config)
    if model.config != config:
        raise FewcellError(f"{p.init} has another network layout than the one asked for; drop --init or match it.")
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.steps, pct_start=0.05)
    model.train()
    running = None
    for step in range(p.steps):
        eps = [sample_episode(sets, w, p, rng) for _ in range(p.batch)]
        batch = [torch.from_numpy(np.stack(z)) for z in zip(*eps)]
        loss = episode_loss(model, batch, p, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 10 == 0 or step + 1 == p.steps:
            yield Progress(step + 1, p.steps, f"loss {running:.4f}")
    model.eval()
    init_card = getattr(model, "card", None) if p.init else None
    card = {
        "init_card": init_card,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(p).items()},
        "training_images": {s.name: s.ids for s in sets},
        "final_loss": running,
        "wall_seconds": round(time.time() - t0, 1),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
    }
    save_weights(model, out, card)
    return model
