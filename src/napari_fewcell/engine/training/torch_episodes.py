"""Episodes cut and augmented with torch on the training device: the sampler of pre-training at scale.

The numpy sampler of :mod:`.episodic` cuts and augments one episode at a time on one CPU core, which is
what a GPU would wait for. Here the images live on the device as uint8 in one flat tensor; the CPU only draws
the numbers (task, images, scale, positions: a box is accepted when its foreground share, read from an
integral image, lies in 3–97 %), and the device cuts, rescales, turns and augments the whole batch at once:
a batch is a fixed number of tensor operations whatever its size (gathers at computed indices), not a few
dozen per episode. Cuts made episode by episode (≈ 38 small operations each) are the likely reason why eight
runs sharing a GPU came to ≈ 930 episodes a second in all whatever their batch (docs/models.md); not yet
measured on a GPU since.

A batch's crops are gathered padded to its largest, resampled by two batched products with
:func:`resize_weights` (``F.interpolate``'s bilinear, antialiased where a crop shrinks), and turned by one gather;
labels take the nearest pixel (``F.interpolate``'s ``nearest``).

Besides the numpy sampler's augmentations (k·90° rotation, flip, gamma, contrast, brightness, noise,
inversion, channel permutation, class swap) an episode is rescaled by a factor drawn log-uniformly
from ``PretrainParams.scale`` (prompt and query alike, as a user's prompt and image share a pixel
size): one network for nuclei of 10 px and of 40 px. A seed gives the same batches on one device.
"""
from __future__ import annotations

import math

import numpy as np
import torch

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


def resize_weights(r: torch.Tensor, size: int, edge: int) -> torch.Tensor:
    """(B, size, edge) the weights that resample crops of edges ``r`` (B,) to ``size`` along one axis: a triangle
    filter centred on each output pixel's source position (``align_corners=False``), as wide as the scale factor
    where a crop shrinks, normalised over the crop's pixels: F.interpolate's bilinear (``antialias=True``; without
    antialiasing where a crop grows, which is the same)."""
    scale = (r.float() / size).view(-1, 1, 1)
    centre = (torch.arange(size, device=r.device, dtype=torch.float32).view(1, -1, 1) + 0.5) * scale - 0.5
    source = torch.arange(edge, device=r.device, dtype=torch.float32).view(1, 1, -1)
    w = (1 - (source - centre).abs() / scale.clamp(min=1)).clamp(min=0) * (source < r.view(-1, 1, 1))
    return w / w.sum(2, keepdim=True)


def turned_grids(size: int, device) -> torch.Tensor:
    """(8, 2, size, size) long: for each turn (k·90° rotation · 2 + flip) the (row, column) of the unturned crop
    that lands on each output pixel (torch.rot90 and flip applied to the coordinates, as they were to the image)."""
    base = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"))
    out = [torch.rot90(base, rot, (1, 2)) for rot in range(4)]
    return torch.stack([g.flip(2) if flip else g for g in out for flip in (False, True)]).to(device)


class TorchEpisodes:
    """``batch()`` → [query images, query labels, prompt regions, prompt-box labels] on ``device``."""

    def __init__(self, tasks: list[DataSet], weights: np.ndarray, p: PretrainParams, rng: np.random.Generator,
                 device: torch.device):
        self.tasks, self.weights, self.p, self.rng, self.device = tasks, weights, p, rng, torch.device(device)
        pixels, labels, shared = [], [], {}  # the tasks of a set share their images: one copy each
        self.where = []  # per task, per image: (pixel offset, label offset, width)
        at, lat = 0, 0
        for t in tasks:
            rows = []
            for k, (a, lab) in enumerate(zip(t.images, t.labels)):
                key = (id(t.images), k)
                if key not in shared:  # a row of 3 uint8 per pixel
                    hwc = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
                    hwc = np.repeat(hwc, 3, 2) if hwc.shape[2] == 1 else hwc
                    pixels.append(hwc.reshape(-1, 3))
                    shared[key], at = at, at + len(pixels[-1])
                labels.append(np.ascontiguousarray(lab, np.uint8).reshape(-1))
                rows.append((shared[key], lat, lab.shape[1]))
                lat += lab.size
            self.where.append(rows)
        self.pixels = torch.from_numpy(np.concatenate(pixels)).to(self.device)
        self.label_pixels = torch.from_numpy(np.concatenate(labels)).to(self.device)
        self.tables = [[integral(lab) for lab in t.labels] for t in tasks]
        self.grids: dict[int, torch.Tensor] = {}

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
    def grid(self, size: int) -> torch.Tensor:
        if size not in self.grids:
            self.grids[size] = turned_grids(size, self.device)
        return self.grids[size]

    def cut(self, crops: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of crops, each resampled to ``size`` and turned: (B, 3, size, size) float in [0, 1] and (B, size,
        size) labels. ``crops`` (B, 7) int: pixel offset, label offset, width, y, x, edge r, turn."""
        c = torch.from_numpy(crops).to(self.device)
        off, loff, width, y, x, r, _ = (c[:, k].view(-1, 1, 1) for k in range(7))
        g = self.grid(size)[c[:, 6]]  # (B, 2, size, size): the unturned crop's pixel under each output pixel
        scale = r.float() / size
        ly, lx = (torch.floor(v * scale).long().minimum(r - 1) for v in (g[:, 0], g[:, 1]))  # nearest
        lab = torch.take(self.label_pixels, loff + (y + ly) * width + (x + lx))
        edge = int(crops[:, 5].max())  # every crop padded to the batch's largest (its weights are 0 beyond r)
        at = torch.arange(edge, device=self.device)
        rows, cols = at.view(1, -1, 1).minimum(r - 1), at.view(1, 1, -1).minimum(r - 1)
        chan = torch.arange(3, device=self.device).view(1, 3, 1, 1)
        crop = torch.take(self.pixels, ((off + (y + rows) * width + x + cols) * 3)[:, None] + chan).float()
        w = resize_weights(r.view(-1), size, edge)  # (B, size, edge)
        with torch.autocast(self.device.type, enabled=False):  # float32 even inside a bfloat16 training step
            img = w[:, None] @ crop @ w[:, None].transpose(2, 3)  # (B, 3, size, size), then turned:
        img = img.flatten(2).gather(2, (g[:, 0] * size + g[:, 1]).flatten(1)[:, None].expand(-1, 3, -1))
        return img.view(-1, 3, size, size) / 255.0, lab

    def batch(self, n: int | None = None) -> list[torch.Tensor]:
        p = self.p
        draws = [self.draw() for _ in range(n or p.batch)]
        region = p.box + 2 * p.context

        def crops(which: str, image: str, turn: int) -> np.ndarray:
            return np.array([[*self.where[d["s"]][d[image]], *d[which], d["rot"][turn] * 2 + d["flip"][turn]]
                             for d in draws], np.int64)

        qi, ql = self.cut(crops("query", "b", 0), p.crop)
        pi, pl = self.cut(crops("prompt", "a", 1), region)
        pl = pl[:, p.context : p.context + p.box, p.context : p.context + p.box]
        # every per-episode number goes to the device in one copy (a copy per number would stall a shared GPU)
        flags = torch.from_numpy(np.array([[*d["gamma"], *d["gain"], *d["shift"], *d["noise"], d["invert"],
                                            d["swap"], *(d["perm"] if d["perm"] is not None else range(3))]
                                           for d in draws], np.float32)).to(self.device)
        qi, pi = self.jitter(qi, flags, 0), self.jitter(pi, flags, 1)
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
