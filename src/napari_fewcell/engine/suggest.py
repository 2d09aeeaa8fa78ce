"""Workflow 4 — what to annotate next: tiles ranked by how much a model would learn from them (paper 001).

Every image is cut into square tiles; each tile is scored by the current model; the highest
scores are the suggestions. The scores (one small function each, all batched on the device):

- ``consistency`` (paper 001, Eq. 4): the model's prediction on the tile against its
  predictions on three augmented versions — auto-contrast, brightness ×m and sharpness ×m
  (Pillow's ``ImageOps.autocontrast`` / ``ImageEnhance`` semantics, implemented on tensors) —
  as pixel-wise binary cross entropy, averaged over the tile's pixels and summed over the three
  augmentations. Large = inconsistent = informative.
- ``entropy``: mean pixel-wise Shannon entropy of the prediction.
- ``mc-dropout``: 10 passes with dropout (p = 0.5) on the input of the model's last layer,
  entropy of the mean prediction (paper 001 §4.1, after Gal & Ghahramani).
- ``random``: a seeded uniform draw.

The model can be the shipped MSD network (before anything is annotated; optionally adapted to
the images by the paper's pretext task, :func:`.pretext.pretext_iter`), a fitted perceptron (workflow 3),
a stage-2 network (workflow 2) or a prompt segmenter with its prompt (workflow 1).

Tiles are scored at ``1/scale`` resolution (default ``scale = 2``, area-averaged): consistency
costs four forward passes per tile, and at full resolution the shipped network needs about 50 s
for 100 tiles of 256² on two CPU cores, at half resolution under 10 s (docs/benchmarks.md).
Image intensities are normalised once per image, so an augmented tile reaches the model as it is
(a per-tile stretch would undo auto-contrast and brightness).

    hits = run(suggest_iter(images, scorer_for(model), SuggestParams(tile=256, top=5)))
    hits[0].box    # (y, x, h, w) of the best tile of images[hits[0].image]
"""
from __future__ import annotations

import dataclasses
from typing import Generator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .device import select_device
from .errors import FewcellError
from .normalize import as_image2d, intensity_range, normalize
from .prompt import Box, Progress

SCORES = ("consistency", "entropy", "mc-dropout", "random")
EPS = 1e-6


@dataclasses.dataclass
class SuggestParams:
    tile: int = 256  #: side of the square tiles
    top: int = 5  #: how many suggestions
    score: str = "consistency"
    scale: int = 2  #: tiles are scored at 1/scale resolution (1 = full resolution; never below 16 px a side)
    magnitude: float = 1.3  #: brightness and sharpness factor of the consistency score (paper: 1.3)
    passes: int = 10  #: MC-dropout forward passes
    dropout: float = 0.5  #: MC-dropout probability
    batch: int = 16  #: tiles per forward pass
    seed: int = 0  #: of the random score and of MC-dropout
    device: str = "auto"

    def check(self) -> None:
        if self.score not in SCORES:
            raise FewcellError(f"There is no score named {self.score!r}; choose one of {', '.join(SCORES)}.")
        if self.tile < 16:
            raise FewcellError(f"A tile of {self.tile} pixels is too small; use tiles of 16 pixels or more.")
        if self.top < 1:
            raise FewcellError("Ask for at least one suggestion (top 1 or more).")
        if self.scale < 1:
            raise FewcellError(f"The scale must be 1 (full resolution) or more, not {self.scale}.")
        if not self.magnitude > 0:
            raise FewcellError(f"The augmentation magnitude must be a positive number, not {self.magnitude}.")
        if self.passes < 2 or not 0 < self.dropout < 1:
            raise FewcellError("MC-dropout needs at least 2 passes and a dropout probability between 0 and 1.")
        if self.batch < 1:
            raise FewcellError("The batch must hold at least one tile.")


class Suggestion(NamedTuple):
    rank: int  #: 1 = best
    image: int  #: index into the images given
    box: Box  #: (y, x, h, w) in that image's pixels
    score: float


# ---- augmentations (Pillow semantics on float tensors in [0, 1]) ------------------------------
def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast`` (cutoff 0): each channel of each image stretched from its min–max
    to [0, 1]; a constant channel is left as it is. x: (N, C, H, W)."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    flat = span <= 0
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(span), span))


def brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Brightness(im).enhance(factor)``: a blend with black, i.e. x·factor, clipped."""
    return (x * factor).clamp(0, 1)


_SMOOTH = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13  # ImageFilter.SMOOTH


def sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Sharpness(im).enhance(factor)``: a blend of the image with its SMOOTH-filtered
    version (3×3 kernel [1 1 1; 1 5 1; 1 1 1]/13, border pixels left unfiltered as Pillow does),
    ``smooth + factor·(x − smooth)``, clipped."""
    c = x.shape[1]
    k = _SMOOTH.to(x)[None, None].expand(c, 1, 3, 3)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(x, k, groups=c)
    return (smooth + factor * (x - smooth)).clamp(0, 1)


def augmentations(x: torch.Tensor, magnitude: float) -> list[torch.Tensor]:
    return [autocontrast(x), brightness(x, magnitude), sharpness(x, magnitude)]


# ---- scores on predictions (N, K, h, w) ------------------------------------------------------
def _xent(p: torch.Tensor, q: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """Pixel-mean cross entropy of prediction q against target p, per image (N,)."""
    q = q.clamp(EPS, 1 - EPS)
    if exclusive:
        return -(p * q.log()).sum(1).mean((1, 2))
    return -(p * q.log() + (1 - p) * (1 - q).log()).sum(1).mean((1, 2))


def _entropy(p: torch.Tensor, exclusive: bool) -> torch.Tensor:
    return _xent(p, p, exclusive)


class Scorer:
    """A model seen as two steps, so MC-dropout can drop the input of the last layer:
    ``maps(x)`` (N, 3, h, w) normalised tiles → (N, F, h, w) and ``head(maps)`` → (N, K, h, w)
    probabilities, ``exclusive`` (softmax over K) or independent (one sigmoid per class)."""

    exclusive = False
    name = "model"

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

    def __init__(self, model):
        self.model = model
        self.fx = model.extractors
        self.device = self.fx.device
        self.name = "perceptron"
        self._w = torch.as_tensor(model.W, dtype=torch.float32)
        self._b = torch.as_tensor(model.b, dtype=torch.float32)
        self._mean = torch.as_tensor(model.mean, dtype=torch.float32)[:, None, None]
        self._std = torch.as_tensor(model.std, dtype=torch.float32)[:, None, None]

    def maps(self, x):
        feats = [torch.from_numpy(self.fx.region(t.cpu().numpy())) for t in x]
        return (torch.stack(feats) - self._mean) / self._std

    def head(self, m):
        return torch.sigmoid(torch.einsum("kf,nfhw->nkhw", self._w, m) + self._b[None, :, None, None])


class SegModelScorer(Scorer):
    """A stage-2 network (workflow 2): U-Net body, then its 1×1 class head with a softmax."""

    exclusive = True

    def __init__(self, model):
        self.model = model
        self.net = model.net
        self.device = model.device
        self.name = "stage-2 network"

    def maps(self, x):
        from .prompt import _pad_to_multiple

        t, h, w = _pad_to_multiple(x, self.net.multiple)
        return self.net.body(t)[..., :h, :w]

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
        from .prompt import _pad_to_multiple

        t, h, w = _pad_to_multiple(x, self.seg.model.multiple)
        return self.seg.model.decode(t)[..., :h, :w]

    def head(self, m):
        from .attention import attend

        n, d, h, w = m.shape
        e = F.normalize(m, dim=1).permute(0, 2, 3, 1).reshape(-1, d).float()
        p = attend(e, self.keys, self.seg.tau)
        return p.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def scorer_for(model, prompt=None, device: str = "auto") -> Scorer:
    """The scorer of a perceptron, stage-2 network, segmenter (+ prompt) or MSD network."""
    from .msd import MSDNet
    from .perceptron import Perceptron
    from .prompt import Segmenter
    from .segnet import SegModel

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
    from .features import PREFIX, shipped_dir, shipped_names
    from .msd import load_msd

    name = name or ("he_nuclei" if channels >= 3 else "fluo_nuclei")
    if name not in shipped_names():
        raise FewcellError(f"No shipped network is named {name}; the shipped ones are {', '.join(shipped_names())}.")
    net, _, _ = load_msd(shipped_dir() / f"{PREFIX}{name}.pt")
    return MSDScorer(net, name, device)


@torch.inference_mode()
def score_batch(scorer: Scorer, x: torch.Tensor, p: SuggestParams,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Scores (N,) of a batch of normalised tiles x (N, 3, h, w), already at scoring resolution."""
    if p.score == "random":
        return torch.rand(x.shape[0], generator=generator).numpy()
    if p.score == "consistency":
        # one forward pass per version: a batch four times larger runs 1.5–2× slower per tile on a CPU
        base = scorer.predict(x)
        total = sum(_xent(base, scorer.predict(a), scorer.exclusive) for a in augmentations(x, p.magnitude))
        return total.float().cpu().numpy()
    m = scorer.maps(x)
    if p.score == "entropy":
        return _entropy(scorer.head(m), scorer.exclusive).float().cpu().numpy()
    mean = 0
    if p.dropout == 0.5:  # one random byte per value is 2–5× cheaper than a float draw
        def keep():
            return torch.randint(0, 2, m.shape, generator=generator, dtype=torch.uint8).to(m.device, m.dtype)
    else:
        def keep():
            return (torch.rand(m.shape, generator=generator) >= p.dropout).to(m.device, m.dtype)
    for _ in range(p.passes):
        mean = mean + scorer.head(m * keep() / (1 - p.dropout))
    return _entropy(mean / p.passes, scorer.exclusive).float().cpu().numpy()


# ---- tiles ------------------------------------------------------------------------------------
def tile_boxes(shape: tuple[int, int], tile: int) -> list[Box]:
    """Full-size square tiles covering an image; the last row and column are flush with its edge."""
    H, W = shape

    def starts(n):
        s = list(range(0, n - tile + 1, tile))
        return s + [n - tile] if s[-1] + tile < n else s

    return [(y, x, tile, tile) for y in starts(H) for x in starts(W)]


def overlaps(a: Box, b: Box) -> bool:
    """Whether two (y, x, h, w) boxes share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def candidates(images: Sequence, tile: int, exclude: dict | None = None, names: Sequence[str] | None = None):
    """(arrays, [(image index, box)]) of the tiles that may be suggested; checks the images."""
    arrs = []
    for i, img in enumerate(images):
        name = names[i] if names else f"image {i + 1}"
        arr = as_image2d(img, name)
        if tile > min(arr.shape[:2]):
            raise FewcellError(f"The tile size {tile} is larger than {name} ({arr.shape[0]}×{arr.shape[1]}); "
                               f"choose a tile of at most {min(arr.shape[:2])} pixels.")
        arrs.append(arr)
    kinds = {a.shape[-1] for a in arrs}
    if len(kinds) > 1:
        raise FewcellError("The images mix gray and colour (different channel counts); suggest tiles for images "
                           "of one kind at a time.")
    exclude = exclude or {}
    cands = [(i, b) for i, a in enumerate(arrs) for b in tile_boxes(a.shape[:2], tile)
             if not any(overlaps(b, e) for e in exclude.get(i, ()))]
    return arrs, cands


def suggest_iter(images: Sequence, scorer: Scorer | None, params: SuggestParams | None = None,
                 exclude: dict | None = None, names: Sequence[str] | None = None
                 ) -> Generator[Progress, None, list[Suggestion]]:
    """Score every tile of ``images`` (2D gray or RGB arrays) and return the ``top`` best, best first.

    ``exclude`` maps an image index to boxes already annotated (or skipped): tiles overlapping them
    are not suggested. ``scorer`` None is allowed for the random score only.
    """
    p = params or SuggestParams()
    p.check()
    if scorer is None and p.score != "random":
        raise FewcellError(f"The {p.score} score needs a model; fit one (or use the shipped network) first.")
    arrs, cands = candidates(images, p.tile, exclude, names)
    if not cands:
        raise FewcellError("Every tile is already annotated or skipped; there is nothing left to suggest.")
    if p.top > len(cands):
        raise FewcellError(f"Asked for the top {p.top} tiles but there are only {len(cands)} tiles to choose "
                           f"from; ask for at most {len(cands)} (or use smaller tiles).")
    device = scorer.device if scorer is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(p.seed)
    scale = max(1, min(p.scale, p.tile // 16))
    norm = {}
    scores = np.empty(len(cands))
    yield Progress(0, len(cands), f"scoring tiles ({p.score})")
    for s in range(0, len(cands), p.batch):
        chunk = cands[s : s + p.batch]
        tiles = []
        for i, (y, x, h, w) in chunk:
            if i not in norm:  # one intensity range per image, so tiles are comparable
                norm[i] = intensity_range(arrs[i])
            tiles.append(normalize(arrs[i][y : y + h, x : x + w], norm[i]))
        t = torch.from_numpy(np.stack(tiles)).to(device)
        if scale > 1:
            t = F.avg_pool2d(t, scale)
        scores[s : s + len(chunk)] = score_batch(scorer, t, p, gen)
        yield Progress(s + len(chunk), len(cands), f"scoring tiles ({p.score})")
    order = np.argsort(-scores, kind="stable")
    # best first, passing over a tile that overlaps a better suggestion of the same image (edge tiles
    # overlap their neighbours); only if too few remain are overlapping ones taken, best first
    picked: list[int] = []
    for j in order:
        if not any(cands[j][0] == cands[k][0] and overlaps(cands[j][1], cands[k][1]) for k in picked):
            picked.append(int(j))
            if len(picked) == p.top:
                break
    picked += [int(j) for j in order if int(j) not in picked][: p.top - len(picked)]
    return [Suggestion(r + 1, cands[j][0], tuple(int(v) for v in cands[j][1]), float(scores[j]))
            for r, j in enumerate(picked)]
