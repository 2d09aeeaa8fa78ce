"""Prompt attention, paper 000 Eq. 1–2: ``o_i = Σ_j softmax_j(x_i·p_j / τ) q_j``.

Two ways to the same formula:

* **exact** — every prompt pixel is a key. Computed with torch's
  ``scaled_dot_product_attention`` in query chunks, so memory stays bounded
  (the naive N×M score matrix of a 2048² image and a 64² prompt is 69 GB).
* **prototypes** — the prompt pixels of each class are grouped by k-means
  (scikit-learn) into at most ``k`` clusters; each cluster is one key at its
  centroid with an additive ``log(size)`` bias, so a cluster of n identical
  pixels weighs exactly as those n pixels do in the exact formula. With 64
  clusters per class the score matrix shrinks ~32× and a 512² image takes
  milliseconds instead of ~10 s on a 2-core CPU.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import FewcellError


@dataclasses.dataclass
class PromptKeys:
    """What an image attends to: keys (M, D), one-hot values (M, C), optional bias (M,)."""

    keys: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None
    classes: np.ndarray  # label value of each one-hot column, e.g. [0, 1]

    def to(self, device) -> "PromptKeys":
        return dataclasses.replace(
            self,
            keys=self.keys.to(device),
            values=self.values.to(device),
            bias=None if self.bias is None else self.bias.to(device),
        )


def naive_attention(x: torch.Tensor, p: torch.Tensor, q: torch.Tensor, tau: float) -> torch.Tensor:
    """Reference implementation with the full N×M matrix (tests only). x (N,D), p (M,D), q (M,C)."""
    return torch.softmax(x @ p.T / tau, dim=1) @ q


#: at most this many query × key scores are held at once (4 MB of float32): the scores of a chunk stay in the
#: CPU's cache between the product, the softmax and the mix, which makes attention 1.7–2.8× faster on a 2-core CPU
#: than chunks of 256 MB did (32 to 4,096 keys, 0.26 Mpx, timed by hand; the benchmarks: docs/benchmarks/)
MAX_SCORES = 2**20
#: up to this many keys (prototypes), a plain matmul + softmax: 1.6× faster than torch's fused kernel on a 2-core
#: CPU for 1 Mpx × 128 keys (the fused kernel pays off for the exact path's thousands of keys)
SMALL_KEYS = 1024


def attend(x: torch.Tensor, prompt: PromptKeys, tau: float, chunk: int = 65536) -> torch.Tensor:
    """Class probabilities (N, C) for embeddings x (N, D); queries processed ``chunk`` at a time.

    ``chunk`` is lowered so that a chunk never holds more than :data:`MAX_SCORES` scores.
    """
    if tau <= 0 or not np.isfinite(tau):
        raise FewcellError(f"The temperature τ must be a positive number, not {tau}.")
    chunk = max(1, min(chunk, MAX_SCORES // max(1, prompt.keys.shape[0])))
    if prompt.keys.shape[0] <= SMALL_KEYS:
        return small_attend(x, prompt, tau, chunk)
    k = prompt.keys[None, None]  # (1, 1, M, D)
    v = prompt.values[None, None].to(x.dtype)
    mask = None if prompt.bias is None else prompt.bias.to(x.dtype)[None, None, None, :]
    out = []
    for start in range(0, x.shape[0], chunk):
        qx = x[start : start + chunk][None, None]
        o = F.scaled_dot_product_attention(qx, k, v, attn_mask=mask, scale=1.0 / tau)
        out.append(o[0, 0])
    return torch.cat(out) if len(out) > 1 else out[0]


def small_attend(x: torch.Tensor, prompt: PromptKeys, tau: float, chunk: int) -> torch.Tensor:
    """``attend`` for a few keys: softmax(x·kᵀ/τ + bias) @ v by matmul, ``chunk`` queries at a time."""
    keys, values = prompt.keys.to(x.dtype), prompt.values.to(x.dtype)
    bias = torch.zeros(keys.shape[0], dtype=x.dtype, device=x.device) if prompt.bias is None else \
        prompt.bias.to(x.dtype)
    out = torch.empty(x.shape[0], values.shape[1], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        scores = torch.addmm(bias, x[start : start + chunk], keys.T, alpha=1.0 / tau)
        out[start : start + chunk] = torch.softmax(scores, dim=1) @ values
    return out


def key_counts(keys: PromptKeys) -> torch.Tensor:
    """(C,) how many prompt pixels each class's keys stand for (a prototype: its cluster's weight)."""
    w = torch.ones(keys.values.shape[0], device=keys.values.device) if keys.bias is None else keys.bias.exp()
    return w @ keys.values


def rebalance(probs: torch.Tensor, counts: torch.Tensor, balance: float) -> torch.Tensor:
    """Attention's class probabilities (N, C) as if each class's keys weighed n_c^−``balance`` each (``counts``: n_c):
    0 leaves them as they are (a class of many prompt pixels outvotes a thin one), 1 weighs every class alike (a
    prior of equal shares). The same as weighting the keys, computed on the output."""
    if not balance:
        return probs
    p = probs * counts.to(probs.device, probs.dtype).clamp_min(1e-12) ** -balance
    return p / p.sum(1, keepdim=True).clamp_min(1e-12)


def one_hot_labels(labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """One-hot (M, C) float matrix for flat labels and the label value of each column."""
    classes, inverse = np.unique(labels, return_inverse=True)
    q = F.one_hot(torch.from_numpy(inverse.astype(np.int64)), len(classes)).float()
    return q, classes


def exact_keys(emb: torch.Tensor, labels: np.ndarray, weights: np.ndarray | None = None) -> PromptKeys:
    """Every prompt pixel is a key. emb (M, D), labels (M,); ``weights`` (M,): a pixel of weight w counts as w
    pixels (an additive log w bias; None: 1 each)."""
    q, classes = one_hot_labels(labels)
    bias = None if weights is None else torch.from_numpy(np.log(np.asarray(weights, np.float64)).astype(np.float32))
    return PromptKeys(emb.float(), q, bias, classes)


#: a class's k-means prototypes are fitted on at most this many of its pixels (a seeded sample; every pixel still
#: counts for its nearest prototype's weight). A partial-labels run's 15 boxes of 64² hold fewer (61,440 in all), so
#: their keys are as before; a box of a whole 520×696 image took 5.5 s of k-means on 2 cores
KMEANS_PIXELS = 65536


def prototype_keys(emb: torch.Tensor, labels: np.ndarray, k: int = 64, seed: int = 0,
                   weights: np.ndarray | None = None) -> PromptKeys:
    """At most ``k`` k-means prototypes per class, weighted by log cluster size (the sum of its pixels'
    ``weights``, 1 each by default; k-means weighs them alike)."""
    from sklearn.cluster import KMeans

    emb_np = emb.detach().float().cpu().numpy()
    weights = np.ones(len(emb_np)) if weights is None else np.asarray(weights, np.float64)
    classes = np.unique(labels)
    keys, values, bias = [], [], []
    for ci, c in enumerate(classes):
        every, w_every = emb_np[labels == c], weights[labels == c]
        pts, w = every, w_every
        if len(every) > KMEANS_PIXELS:  # a whole-image box: the centres from a seeded sample, the counts from all
            pick = np.sort(np.random.default_rng(seed).choice(len(every), KMEANS_PIXELS, replace=False))
            pts, w = every[pick], w_every[pick]
        n_clusters = min(k, len(np.unique(pts.round(4), axis=0)))
        if n_clusters >= len(pts):
            centres, counts = pts, w
        else:
            km = KMeans(n_clusters=n_clusters, n_init=1, max_iter=50, random_state=seed).fit(pts, sample_weight=w)
            centres, nearest = km.cluster_centers_, km.labels_ if pts is every else km.predict(every)
            counts = np.bincount(nearest, weights=w_every, minlength=n_clusters).astype(np.float64)
            keep = counts > 0
            centres, counts = centres[keep], counts[keep]
        keys.append(centres)
        bias.append(np.log(counts))
        values.append(np.full(len(centres), ci))
    values = np.concatenate(values)
    q = F.one_hot(torch.from_numpy(values.astype(np.int64)), len(classes)).float()
    return PromptKeys(
        torch.from_numpy(np.concatenate(keys).astype(np.float32)),
        q,
        torch.from_numpy(np.concatenate(bias).astype(np.float32)),
        classes,
    )
