"""MoCo self-supervised learning of the U-Net encoder alternated with episodes (paper 004, CUPre §III-D).

CUPre alternates a MoCo step on unlabelled cell images (the backbone only) with a supervised step
(the whole network). Here step i (counting from 1) is a MoCo step when i is a multiple of
``moco_every`` and an episodic step otherwise (``moco_every == 1``: MoCo only).

* **MoCo step** (MoCo v2). An image is drawn uniformly from all (train) images of the loaded tasks,
  pooled as CUPre pools its cell images; the labels are never read. Two views come from one random
  region of it (edge ``crop`` + ``crop``/4): each view is a ``crop``² crop at its own offset in that
  region, with its own k·90° rotation, flip and :data:`~..core.augment.STRONG` intensity jitter.
  Query = the network's encoder (``EmbedNet.bottleneck``, global average pooled) → a 2-layer MLP
  projection → a 128-d unit vector. Key = the same through a momentum copy (``moco_momentum``) of
  encoder and projection. InfoNCE (temperature ``moco_tau``) of each query against its key and a
  queue of ``moco_queue`` earlier keys (initialised with random unit vectors); the batch's keys are
  then enqueued. Both encoders run in train mode (batch statistics). MoCo's *shuffling BN* is
  emulated on one device: queries are normalised in :data:`BN_GROUPS` groups of the batch in
  order, keys in groups of a random permutation, so that a query's BatchNorm statistics are not
  those of its positive key, and the network cannot find the positive by them rather than by
  content. (Keys in eval mode, with running statistics, would avoid the leak too, but on toy data
  they all collapsed onto one vector early on, and nothing was learnt.)
* **Episodic step**: one step of the episodic attention loss (:func:`.episodic.episode_loss`) on
  ``p.batch`` episodes, as :class:`.episodic.Episodic` does.

One Adam (lr ``p.lr``) over the network and the projection head serves both kinds of step, with
:class:`~.episodic.Episodic`'s one-cycle schedule over all ``steps``; a MoCo step gives gradients
to the encoder and the head only, an episodic step to the network only (Adam skips parameters
without a gradient). The projection head and the key encoder are discarded after pre-training.
``step()`` returns this step's loss and the last value of each part; a part not run yet reports
its chance level (InfoNCE log(1 + queue), two-class cross entropy log 2), and with
``moco_every == 1`` there is no episodic part.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.augment import STRONG, augment
from ..core.errors import FewcellError
from ..nets.unet import EmbedNet
from .datasets import DataSet
from .episodic import crop, episode_batch, episode_loss, task_weights
from .params import PretrainParams

PROJECTION_DIM = 128  #: MoCo v2's output dimension
BN_GROUPS = 2  #: "devices" of MoCo's shuffling BN: queries and keys are normalised in this many groups


def projection_head(features: int) -> nn.Sequential:
    """MoCo v2's 2-layer MLP from the pooled encoder features to :data:`PROJECTION_DIM`."""
    hidden = max(features, PROJECTION_DIM)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, PROJECTION_DIM))


def pooled_images(tasks: list[DataSet]) -> list[np.ndarray]:
    """Every image of the tasks once (the tasks of one set share their image list)."""
    seen, images = set(), []
    for t in tasks:
        if id(t.images) not in seen:
            seen.add(id(t.images))
            images += t.images
    return images


def two_views(images: list[np.ndarray], n: int, size: int, multiple: int, rng: np.random.Generator):
    """``n`` pairs of views (two tensors (n, 3, s, s)): two crops of one random region, augmented independently."""
    chosen = [images[i] for i in rng.integers(len(images), size=n)]
    edge = min(min(img.shape[1:]) for img in chosen)
    s = max(multiple, min(size, edge * 4 // 5) // multiple * multiple)
    region = min(s + s // 4, edge)
    views: tuple[list, list] = ([], [])
    for img in chosen:
        blank = np.zeros(img.shape[1:], np.uint8)  # crop and augment carry a label map along; this one is empty
        r, rb = crop(img, blank, region, rng)
        for out in views:
            v, vb = crop(r, rb, s, rng)
            out.append(augment(v, vb, rng, STRONG)[0])
    return torch.from_numpy(np.stack(views[0])), torch.from_numpy(np.stack(views[1]))


class MoCo:
    """CUPre's alternation of MoCo v2 on the encoder with episodic steps (see the module doc)."""

    name = "moco"

    def __init__(self, model: EmbedNet, tasks: list[DataSet], p: PretrainParams, rng: np.random.Generator,
                 gen: torch.Generator):
        if p.moco_every < 1 or p.moco_queue < 1 or not 0 <= p.moco_momentum <= 1 or p.moco_tau <= 0:
            raise FewcellError("MoCo needs moco_every ≥ 1, a queue of one key or more, a momentum in [0, 1] "
                               "and a positive temperature.")
        self.model, self.tasks, self.p, self.rng, self.gen = model, tasks, p, rng, gen
        self.weights = task_weights(tasks, p)
        self.images = pooled_images(tasks)
        self.proj = projection_head(model.config.base * 2**model.config.depth)
        self.key_net, self.key_proj = copy.deepcopy(model), copy.deepcopy(self.proj)
        for q in [*self.key_net.parameters(), *self.key_proj.parameters()]:
            q.requires_grad_(False)
        init = torch.Generator().manual_seed(p.seed)  # not the run's generators: the queue is in the checkpoint
        self.queue = F.normalize(torch.randn(p.moco_queue, PROJECTION_DIM, generator=init), dim=1)
        self.ptr, self.count = 0, 0
        self.groups = min(BN_GROUPS, p.batch)
        self.last = {"moco": math.log(1 + p.moco_queue), "episodic": math.log(2)}
        self.opt = torch.optim.Adam([*model.parameters(), *self.proj.parameters()], lr=p.lr)
        # Episodic's one-cycle schedule: 5 % warm-up, a longer one for toy runs (OneCycleLR divides by zero when
        # 5 % of the steps is one step)
        warm = 0.05 if p.steps >= 40 else 0.3
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=p.lr, total_steps=p.steps, pct_start=warm)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Key encoder and key head ← m·key + (1 − m)·query (parameters only, as MoCo)."""
        m = self.p.moco_momentum
        for key, query in [(self.key_net.down, self.model.down), (self.key_proj, self.proj)]:
            for k, q in zip(key.parameters(), query.parameters()):
                k.mul_(m).add_(q.detach(), alpha=1 - m)

    def encode(self, net: EmbedNet, head: nn.Module, x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Unit projections of the views ``x`` (in their order), BatchNorm statistics taken over groups of ``order``."""
        pooled = torch.cat([net.bottleneck(x[g]).mean((2, 3)) for g in order.chunk(self.groups)])
        return F.normalize(head(pooled), dim=1)[order.argsort()]

    def moco_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE of a batch of queries against their keys and the queue; and the keys (to enqueue)."""
        xq, xk = two_views(self.images, self.p.batch, self.p.crop, self.model.multiple, self.rng)
        q = self.encode(self.model, self.proj, xq, torch.arange(len(xq)))
        with torch.no_grad():
            self.momentum_update()
            self.key_net.train()
            k = self.encode(self.key_net, self.key_proj, xk, torch.randperm(len(xk), generator=self.gen))
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.T], dim=1) / self.p.moco_tau
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long)), k

    def enqueue(self, keys: torch.Tensor) -> None:
        """The newest keys replace the oldest in the queue (after the backward pass, which reads the queue)."""
        idx = (self.ptr + torch.arange(len(keys))) % len(self.queue)
        self.queue[idx] = keys
        self.ptr = int((self.ptr + len(keys)) % len(self.queue))

    def step(self) -> dict[str, float]:
        self.model.train()
        self.count += 1
        part = "moco" if self.count % self.p.moco_every == 0 else "episodic"
        keys = None
        if part == "moco":
            loss, keys = self.moco_loss()
        else:
            batch = episode_batch(self.tasks, self.weights, self.p, self.rng)
            loss = episode_loss(self.model, batch, self.p, self.gen)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        if keys is not None:
            self.enqueue(keys)
        self.last[part] = loss.item()
        parts = ("moco",) if self.p.moco_every == 1 else ("moco", "episodic")
        return {"loss": loss.item(), **{k: self.last[k] for k in parts}}

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "count": self.count,
                "proj": self.proj.state_dict(), "key_down": self.key_net.down.state_dict(),
                "key_proj": self.key_proj.state_dict(), "queue": self.queue.clone(), "ptr": self.ptr,
                "last": dict(self.last)}

    def load_state_dict(self, state: dict) -> None:
        self.proj.load_state_dict(state["proj"])
        self.key_net.down.load_state_dict(state["key_down"])
        self.key_proj.load_state_dict(state["key_proj"])
        if state["queue"].shape != self.queue.shape:
            raise ValueError("queue of another size")
        self.queue = state["queue"].clone()
        self.ptr, self.count = int(state["ptr"]), int(state["count"])
        self.last = {k: float(v) for k, v in state["last"].items()}
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
