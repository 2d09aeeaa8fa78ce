"""Episodic pre-training of the embedding network (paper 000 §3.1–3.2, Eq. 3).

An episode takes a 64×64 prompt box (with 32 px of context) from one training image
and a query crop from another image of the same task; the query's pixels attend
to the prompt's pixels (Eq. 1–2) and the loss is the cross entropy of the attention
output against the query's labels (Eq. 3). Only ``split.csv == train`` images are read.
Tasks are drawn by weight; with ``swap_p`` an episode swaps foreground and background in
prompt and query alike, so that only the prompt says which structure is wanted.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.augment import STRONG, augment
from ..core.device import select_device
from ..core.losses import soft_dice
from ..nets.unet import EmbedNet
from .datasets import DataSet
from .params import PretrainParams
from .torch_episodes import TorchEpisodes


def crop(img, lab, size, rng, y=None, x=None):
    """A ``size``² crop of an image (C, H, W) and its labels (H, W); random where y, x are None."""
    H, W = lab.shape
    size = min(size, H, W)
    y = rng.integers(0, H - size + 1) if y is None else y
    x = rng.integers(0, W - size + 1) if x is None else x
    return img[:, y : y + size, x : x + size], lab[y : y + size, x : x + size]


def task_weights(tasks: list[DataSet], p: PretrainParams) -> np.ndarray:
    """Sampling weight of each task: the weight of the name that chose it, shared by the tasks of a set."""
    named = dict(zip(p.datasets, p.dataset_weights)) if p.dataset_weights else {}
    per_set = {}
    for t in tasks:
        per_set[t.set_name] = per_set.get(t.set_name, 0) + 1
    w = []
    for t in tasks:
        if t.name in named:
            w.append(named[t.name])
        else:
            w.append(named.get(t.set_name, 1.0) / per_set[t.set_name])
    w = np.array(w, float)
    return w / w.sum()


def sample_episode(tasks: list[DataSet], weights: np.ndarray, p: PretrainParams, rng: np.random.Generator):
    """(query image, query labels, prompt region, prompt-box labels) for one episode."""
    s = tasks[rng.choice(len(tasks), p=weights)]
    n = len(s.images)
    a = rng.integers(n)
    b = (a + 1 + rng.integers(n - 1)) % n if n > 1 else a
    region = p.box + 2 * p.context
    for _ in range(30):  # a prompt box holding both classes
        pi, pl = crop(s.images[a], s.labels[a], region, rng)
        box = pl[p.context : p.context + p.box, p.context : p.context + p.box]
        if 0.03 < box.mean() < 0.97:
            break
    qi, ql = crop(s.images[b], s.labels[b], p.crop, rng)
    pi, pl = augment(pi, pl, rng, STRONG)
    qi, ql = augment(qi, ql, rng, STRONG)
    if rng.random() < p.invert_p:  # invert both: the prompt, not the appearance, says what is foreground
        pi, qi = 1 - pi, 1 - qi
    if rng.random() < 0.3:
        perm = rng.permutation(3)
        pi, qi = pi[perm], qi[perm]
    if p.swap_p and rng.random() < p.swap_p:  # the prompt asks for the other class
        pl, ql = 1 - pl, 1 - ql
    c = p.context
    return qi, ql, pi, pl[c : c + p.box, c : c + p.box]


def episode_batch(tasks: list[DataSet], weights: np.ndarray, p: PretrainParams, rng: np.random.Generator,
                  n: int | None = None) -> list[torch.Tensor]:
    """``n`` (default ``p.batch``) episodes stacked: [query images, query labels, prompt regions, prompt labels]."""
    eps = [sample_episode(tasks, weights, p, rng) for _ in range(n or p.batch)]
    c = min(e[0].shape[-1] for e in eps)  # small images give smaller crops: crop the batch to the smallest
    eps = [(qi[:, :c, :c], ql[:c, :c], pi, pl) for qi, ql, pi, pl in eps]
    return [torch.from_numpy(np.stack(z)) for z in zip(*eps)]


def attention_output(model: EmbedNet, batch, p: PretrainParams, generator: torch.Generator | None = None):
    """Query pixels' attention output (B, n, 2) over the prompt pixels, and their labels (B, n)."""
    qi, ql, pi, pl = batch
    B = qi.shape[0]
    if qi.shape[-2:] == pi.shape[-2:]:
        emb = model(torch.cat([qi, pi]))
        eq, ep = emb[:B], emb[B:]
    else:
        eq, ep = model(qi), model(pi)
    c = p.context
    x = eq.flatten(2).transpose(1, 2)  # (B, N, D)
    k = ep[:, :, c : c + p.box, c : c + p.box].flatten(2).transpose(1, 2)  # (B, M, D)
    y = ql.flatten(1).long()
    v = F.one_hot(pl.flatten(1).long(), 2).float()  # (B, M, 2)
    qsel, ksel = pixel_draws(B, x.shape[1], k.shape[1], p, generator, x.device)
    x = torch.take_along_dim(x, qsel[..., None], 1)[:, None]
    y = torch.take_along_dim(y, qsel, 1)
    k = torch.take_along_dim(k, ksel[..., None], 1)[:, None]
    v = torch.take_along_dim(v, ksel[..., None], 1)[:, None]
    return F.scaled_dot_product_attention(x, k, v, scale=1.0 / p.tau)[:, 0], y


def pixel_draws(B: int, n_query: int, n_key: int, p: PretrainParams, generator, device):
    """Random query and key pixels of each episode: drawn by the CPU generator on a CPU; on another device by a
    generator there, seeded from it (no copy to the device, and no CPU sort, per step)."""
    if device.type != "cpu" and generator is not None:
        generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    else:
        device = "cpu"
    qsel = torch.rand(B, n_query, generator=generator, device=device).argsort(1)[:, : p.query_pixels]
    ksel = torch.rand(B, n_key, generator=generator, device=device).argsort(1)[:, : p.key_pixels]
    return qsel, ksel


def episode_loss(model: EmbedNet, batch, p: PretrainParams, generator: torch.Generator | None = None,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross entropy of the attention output against the query labels (Eq. 3), plus an optional soft Dice."""
    o, y = attention_output(model, batch, p, generator)
    o = o.float()  # under bfloat16 autocast: the loss in float32
    loss = F.nll_loss(torch.log(o.clamp_min(1e-6)).transpose(1, 2), y, weight=class_weights)
    if p.dice_weight:
        t = F.one_hot(y, 2).float()
        loss = loss + p.dice_weight * (1 - soft_dice(o, t, dim=1).mean())  # Dice per episode and class
    return loss


class Episodic:
    """Paper 000's episodic training: one Adam step on a batch of episodes per step (one-cycle schedule)."""

    name = "episodic"

    def __init__(self, model: EmbedNet, tasks: list[DataSet], p: PretrainParams, rng: np.random.Generator,
                 gen: torch.Generator):
        self.model, self.tasks, self.p, self.rng, self.gen = model, tasks, p, rng, gen
        self.weights = task_weights(tasks, p)
        self.device = select_device(p.device)
        model.to(self.device)
        self.sampler = TorchEpisodes(tasks, self.weights, p, rng, self.device) if p.sampler == "torch" else None
        self.opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        self.progress = 0.0  #: share of the run done (steps or wall time, the larger), set by the driver
        if p.wall_minutes:  # the time-based schedule: lr_at(progress) set before every step
            self.sched = None
            return
        # 5 % warm-up (a longer one for toy runs: OneCycleLR divides by zero when 5 % of the steps is one step)
        warm = 0.05 if p.steps >= 40 else 0.3
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=p.lr, total_steps=p.steps, pct_start=warm)

    def lr_at(self, f: float) -> float:
        """Linear warm-up over the first 5 % of the run, then a cosine decay to 1 % of ``lr``."""
        f = min(max(f, 0.0), 1.0)
        if f < 0.05:
            return self.p.lr * (0.04 + 0.96 * f / 0.05)
        return self.p.lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * (f - 0.05) / 0.95)))

    def batch(self) -> list[torch.Tensor]:
        if self.sampler is not None:
            return self.sampler.batch()
        return [t.to(self.device) for t in episode_batch(self.tasks, self.weights, self.p, self.rng)]

    def step(self) -> dict[str, float]:
        self.model.train()
        if self.sched is None:
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.progress)
        batch = self.batch()  # the episodes in float32: only the network's forward pass runs under autocast
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.p.bf16):
            loss = episode_loss(self.model, batch, self.p, self.gen)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), **({"sched": self.sched.state_dict()} if self.sched else {})}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])
