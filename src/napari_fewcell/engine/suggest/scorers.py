"""The models workflow 4 scores tiles with, each seen as two steps — ``maps`` then ``head`` — so
MC-dropout can drop the input of the last layer: the shipped MSD network (before anything is
annotated; optionally adapted by the pretext task, :mod:`.pretext`), a fitted perceptron
(workflow 3), a stage-2 network (workflow 2) or a prompt segmenter with its prompt (workflow 1).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import select_device
from ..core.errors import FewcellError
from ..fewshot.perceptron import Perceptron
from ..nets.attention import attend
from ..nets.msd import MSDNet, load_msd, shipped_names, shipped_path
from ..partial.stage2 import SegModel
from ..prompt.segmenter import Segmenter


class Scorer:
    """A model seen as two steps, so MC-dropout can drop the input of the last layer:
    ``maps(x)`` (N, 3, h, w) normalised tiles → (N, F, h, w) and ``head(maps)`` → (N, K, h, w)
    probabilities, ``exclusive`` (softmax over K) or independent (one sigmoid per class)."""

    exclusive = False
    name = "model"
    scale = 2  #: tiles are scored at 1/scale resolution unless ``SuggestParams.scale`` says otherwise

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, m: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.maps(x))


class MSDScorer(Scorer):
    """A binary MSD network (a shipped one, or one adapted by the pretext task)."""

    def __init__(self, net, name: str = "network", device: str = "auto"):
        self.device = select_device(device)
        self.net = net.to(self.device).eval()
        self.name = name

    def maps(self, x):
        return self.net.all_maps(x)

    def head(self, m):
        return torch.sigmoid(self.net.head(m))


class PerceptronScorer(Scorer):
    """A fitted perceptron: its extractors' features, standardised, then its linear layer."""

    #: its three MSD extractors and filters cost about 4× a network per pixel: at 1/3, consistency over 100 tiles of
    #: 256² takes 4.1 s instead of 8.0 s at 1/2, and the loop's suggestions at 3 and 5 tiles moved by −0.1 to +2.2
    #: (ISBI and DSB, validation and test; docs/benchmarks/suggest.md)
    scale = 3

    def __init__(self, model):
        self.model = model
        self.fx = model.extractors
        self.device = self.fx.device
        self.name = "perceptron"
        self._w = torch.as_tensor(model.W, dtype=torch.float32)
        self._b = torch.as_tensor(model.b, dtype=torch.float32)
        self._mean = torch.as_tensor(model.mean, dtype=torch.float32)[:, None, None]
        self._std = torch.as_tensor(model.std, dtype=torch.float32)[:, None, None]

    def check_images(self, arrs, names=None) -> None:
        """One sentence for an image of another kind (gray or colour) than the perceptron was fitted on."""
        for i, arr in enumerate(arrs):
            self.model.check_kind(arr, names[i] if names else f"image {i + 1}")

    def maps(self, x):
        # the kept features when the extractors keep them (the suggest loop), else computed for the batch
        feats = torch.from_numpy(np.stack(self.fx.tile_features(x.cpu().numpy())).astype(np.float32, copy=False))
        return (feats - self._mean) / self._std

    def head(self, m):
        return torch.sigmoid(torch.einsum("kf,nfhw->nkhw", self._w, m) + self._b[None, :, None, None])

    def predict(self, x):
        """``head(maps(x))``: from the kept features of the tiles when the extractors keep them (the suggest loop),
        else without building the features' stack (:meth:`Extractors.project_batch`)."""
        w, b = self.model.folded()
        project = self.fx.project_tiles if self.fx.keeps_tiles else self.fx.project_batch
        z = torch.from_numpy(project(x.cpu().numpy(), w, b))
        return torch.sigmoid(z).to(x.device)


class SegModelScorer(Scorer):
    """A stage-2 network (workflow 2): U-Net body, then its 1×1 class head with a softmax."""

    exclusive = True

    def __init__(self, model):
        self.model = model
        self.net = model.net
        self.device = model.device
        self.name = "stage-2 network"

    def maps(self, x):
        return self.net.any_size(x, self.net.body)

    def head(self, m):
        return self.net.head(m).softmax(1)


class PromptScorer(Scorer):
    """A prompt segmenter and its prompt (workflow 1): embeddings, then attention over the prompt."""

    exclusive = True

    def __init__(self, segmenter, prompt):
        self.seg = segmenter
        self.keys = segmenter.keys(prompt)
        self.device = segmenter.device
        self.name = "prompt segmenter"

    def maps(self, x):
        return self.seg.model.any_size(x, self.seg.model.decode)

    def head(self, m):
        n, d, h, w = m.shape
        e = F.normalize(m.permute(0, 2, 3, 1).reshape(-1, d).float(), dim=1)  # rows: a contiguous norm, ~2× faster
        p = attend(e, self.keys, self.seg.tau)
        return p.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def scorer_for(model, prompt=None, device: str = "auto") -> Scorer:
    """The scorer of a perceptron, stage-2 network, segmenter (+ prompt) or MSD network."""
    if isinstance(model, Scorer):
        return model
    if isinstance(model, Perceptron):
        return PerceptronScorer(model)
    if isinstance(model, SegModel):
        return SegModelScorer(model)
    if isinstance(model, Segmenter):
        if prompt is None:
            raise FewcellError("A prompt segmenter scores tiles only with a prompt; segment with a prompt box first.")
        return PromptScorer(model, prompt)
    if isinstance(model, MSDNet):
        return MSDScorer(model, device=device)
    raise FewcellError(f"Cannot score tiles with a {type(model).__name__}; fit a model first.")


def shipped_network(name: str | None = None, channels: int = 1, device: str = "auto") -> MSDScorer:
    """The shipped MSD network ``name`` (default: fluo_nuclei for gray images, he_nuclei for colour)."""
    name = name or ("he_nuclei" if channels >= 3 else "fluo_nuclei")
    if name not in shipped_names():
        raise FewcellError(f"No shipped network is named {name}; the shipped ones are {', '.join(shipped_names())}.")
    net, _, _ = load_msd(shipped_path(name))
    return MSDScorer(net, name, device)
