"""Episodes cut and augmented with torch on the training device: the sampler of pre-training at scale.

The numpy sampler of :mod:`.episodic` cuts and augments one episode at a time on one CPU core, which is
what a GPU would wait for. Here the images live on the device as uint8; the CPU only draws the
numbers (task, images, scale, positions: a box is accepted when its foreground share, read from an
integral image, lies in 3–97 %), and the device cuts, rescales and augments the whole batch.

Besides the numpy sampler's augmentations (k·90° rotation, flip, gamma, contrast, brightness, noise,
inversion, channel permutation, class swap) an episode is rescaled by a factor drawn log-uniformly
from ``PretrainParams.scale`` (prompt and query alike, as a user's prompt and image share a pixel
size): one network for nuclei of 10 px and of 40 px. A seed gives the same batches on one device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import DataSet
from .params import PretrainParams


def integral(lab: np.ndarray) -> np.ndarray:
    """Summed-area table with a zero first row and column: sum of lab[y0:y1, x0:x1] in four look-ups."""
    out = np.zeros((lab.shape[0] + 1, lab.shape[1] + 1), np.int64)
    out[1:, 1:] = np.cumsum(np.cumsum(lab, 0), 1)
    return out


def box_share(table: np.ndarray, y: int, x: int, h: int, w: int) -> float:
    s = table[y + h, x + w] - table[y, x + w] - table[y + h, x] + table[y, x]
    return float(s) / max(h * w, 1)


class TorchEpisodes:
    """``batch()`` → [query images, query labels, prompt regions, prompt-box labels] on ``device``."""

    def __init__(self, tasks: list[DataSet], weights: np.ndarray, p: PretrainParams, rng: np.random.Generator,
                 device: torch.device):
        self.tasks, self.weights, self.p, self.rng, self.device = tasks, weights, p, rng, torch.device(device)
        shared: dict[int, list[torch.Tensor]] = {}  # the tasks of a set share their images: one copy each
        self.images = []
        for t in tasks:
            if id(t.images) not in shared:
                shared[id(t.images)] = [torch.from_numpy(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).to(device)
                                        for a in t.images]
            self.images.append(shared[id(t.images)])
        self.labels = [[torch.from_numpy(np.ascontiguousarray(lab, np.uint8)).to(device) for lab in t.labels]
                       for t in tasks]
        self.tables = [[integral(lab) for lab in t.labels] for t in tasks]

    # ---- the draws (CPU) -------------------------------------------------------------------------------
    def draw(self) -> dict:
        p, rng = self.p, self.rng
        s = int(rng.choice(len(self.tasks), p=self.weights))
        n = len(self.tasks[s].labels)
        a = int(rng.integers(n))
        b = (a + 1 + int(rng.integers(n - 1))) % n if n > 1 else a
        lo, hi = p.scale
        scale = math.exp(rng.uniform(math.log(lo), math.log(hi))) if hi > lo else lo
        region = p.box + 2 * p.context
        H, W = self.tables[s][a].shape[0] - 1, self.tables[s][a].shape[1] - 1
        r = max(8, min(round(region * scale), H, W))  # the prompt region's edge in the source image
        bs, cs = max(1, round(r * p.box / region)), round(r * p.context / region)
        for _ in range(30):  # a prompt box holding both classes
            y, x = int(rng.integers(0, H - r + 1)), int(rng.integers(0, W - r + 1))
            if 0.03 < box_share(self.tables[s][a], y + cs, x + cs, bs, bs) < 0.97:
                break
        Hb, Wb = self.tables[s][b].shape[0] - 1, self.tables[s][b].shape[1] - 1
        q = max(8, min(round(p.crop * scale), Hb, Wb))
        qy, qx = int(rng.integers(0, Hb - q + 1)), int(rng.integers(0, Wb - q + 1))
        return {"s": s, "a": a, "b": b, "prompt": (y, x, r), "query": (qy, qx, q),
                "rot": (int(rng.integers(4)), int(rng.integers(4))), "flip": (rng.random() < 0.5, rng.random() < 0.5),
                "gamma": rng.uniform(-0.35, 0.35, 2), "gain": rng.uniform(0.75, 1.25, 2),
                "shift": rng.uniform(-0.1, 0.1, 2), "noise": rng.uniform(0, 0.03, 2),
                "invert": rng.random() < p.invert_p, "perm": rng.permutation(3) if rng.random() < 0.3 else None,
                "swap": bool(p.swap_p and rng.random() < p.swap_p)}

    # ---- the cuts (device) -----------------------------------------------------------------------------
    def cut(self, s: int, i: int, y: int, x: int, r: int, size: int, rot: int, flip: bool):
        img = self.images[s][i][:, y : y + r, x : x + r].float()[None] / 255
        lab = self.labels[s][i][y : y + r, x : x + r].float()[None, None]
        if r != size:
            img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=r > size)
            lab = F.interpolate(lab, size=(size, size), mode="nearest")
        img, lab = torch.rot90(img[0], rot, (1, 2)), torch.rot90(lab[0, 0], rot, (0, 1))
        if flip:
            img, lab = img.flip(2), lab.flip(1)
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        return img, lab

    def batch(self, n: int | None = None) -> list[torch.Tensor]:
        p = self.p
        draws = [self.draw() for _ in range(n or p.batch)]
        region = p.box + 2 * p.context
        qs, ql, ps, pl = [], [], [], []
        for d in draws:
            img, lab = self.cut(d["s"], d["b"], *d["query"], p.crop, d["rot"][0], d["flip"][0])
            qs.append(img), ql.append(lab)
            img, lab = self.cut(d["s"], d["a"], *d["prompt"], region, d["rot"][1], d["flip"][1])
            ps.append(img), pl.append(lab[p.context : p.context + p.box, p.context : p.context + p.box])
        # every per-episode number goes to the device in one copy (a copy per number would stall a shared GPU)
        flags = torch.from_numpy(np.array([[*d["gamma"], *d["gain"], *d["shift"], *d["noise"], d["invert"],
                                            d["swap"], *(d["perm"] if d["perm"] is not None else range(3))]
                                           for d in draws], np.float32)).to(self.device)
        qi, pi = self.jitter(torch.stack(qs), flags, 0), self.jitter(torch.stack(ps), flags, 1)
        ql, pl = torch.stack(ql), torch.stack(pl)
        inv = flags[:, 8].view(-1, 1, 1, 1) > 0  # the prompt, not the appearance, says what is foreground
        qi, pi = torch.where(inv, 1 - qi, qi), torch.where(inv, 1 - pi, pi)
        perm = flags[:, 10:13].long()[:, :, None, None]
        qi, pi = qi.gather(1, perm.expand_as(qi)), pi.gather(1, perm.expand_as(pi))
        swap = flags[:, 9].view(-1, 1, 1) > 0  # the prompt asks for the other class
        ql, pl = torch.where(swap, 1 - ql, ql), torch.where(swap, 1 - pl, pl)
        return [qi, ql.to(torch.uint8), pi, pl.to(torch.uint8)]

    def jitter(self, img: torch.Tensor, flags: torch.Tensor, j: int) -> torch.Tensor:
        """The numpy sampler's STRONG intensity jitter, drawn per episode, applied to the batch at once."""
        gamma, gain, shift, noise = (flags[:, 2 * k + j].view(-1, 1, 1, 1) for k in range(4))
        img = img.clamp(0, 1) ** torch.exp(gamma)
        img = img * gain + shift
        gen = torch.Generator(device=self.device).manual_seed(int(self.rng.integers(2**62)))
        return img + torch.randn(img.shape, generator=gen, device=self.device) * noise
