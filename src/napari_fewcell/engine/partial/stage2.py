"""Workflow 2, stage 2 — a segmentation network trained on (pseudo-)labels, from the embedding weights or from scratch.

A U-Net (the backbone's architecture with a class-logit head instead of unit embeddings),
trained on random crops with the paper's flips and rotations (plus a mild intensity jitter),
cross entropy + soft Dice. Saved as a state dict with a JSON-able card, loaded with
``torch.load(weights_only=True)``; a readable copy of the card is written beside it::

    model = run(train_iter(images, labels))      # labels: one (H, W) array per image
    model.save("membranes.pt")                   # + membranes.json (the card)
    SegModel.load("membranes.pt").predict(new_image)
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Generator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..core import modelfile
from ..core.annotation import as_list, class_index, label_values, require_two_classes
from ..core.augment import augment, elastic
from ..core.blocks import TiledModel, label_blocks_iter
from ..core.device import resolve_precision, select_device, training_autocast
from ..core.errors import FewcellError
from ..core.image import as_image2d, intensity_range, normalize
from ..core.lazy import LazyImage, open_image
from ..core.losses import soft_dice
from ..core.progress import Progress, relay, run
from ..nets.unet import NetConfig, SegNet, load_model
from .params import TrainParams


class SegModel(TiledModel):
    """A trained segmentation network with its class values and card."""

    def __init__(self, net: SegNet, classes: Sequence[int], card: dict | None = None,
                 class_names: dict | None = None, tta: bool = False, device: str = "auto"):
        self.device = select_device(device)
        self.net = net.to(self.device).eval()
        self.classes = np.asarray(classes, np.int64)
        self.card = card or {}
        self.class_names = {str(k): str(v) for k, v in (class_names or {}).items()}
        self.tta = tta

    # ---- inference -------------------------------------------------------------------------
    @torch.inference_mode()
    def _probs(self, t: torch.Tensor) -> torch.Tensor:
        return self.net.any_size(t, self._padded_probs)

    def _padded_probs(self, t: torch.Tensor) -> torch.Tensor:
        """Class probabilities of an input padded to the network's multiple (the mean of 8 views with TTA)."""
        if not self.tta:
            return self.net(t).softmax(1)
        acc = 0
        for k in range(4):
            for flip in (False, True):
                x = torch.rot90(t, k, (2, 3))
                x = x.flip(3) if flip else x
                y = self.net(x).softmax(1)
                y = y.flip(3) if flip else y
                acc = acc + torch.rot90(y, -k, (2, 3))
        return acc / 8

    # ---- block by block (a TiledModel: big images, clusters) -------------------------------
    tile, margin = 512, 32  #: tiles and their context

    def tile_labels(self, x: np.ndarray, win) -> np.ndarray:
        p = self._probs(torch.from_numpy(x)[None].to(self.device))[(0, slice(None), *win.inner)]
        return self.classes[p.argmax(0).cpu().numpy()]

    def predict_iter(self, image, name: str = "image") -> Generator[Progress, None, np.ndarray]:
        arr = as_image2d(image, name)
        out = np.zeros(arr.shape[:2], self.label_dtype())
        return (yield from label_blocks_iter(self, LazyImage(arr), out))

    def predict_lazy_iter(self, image, out, todo=None, on_block=None) -> Generator:
        """Predict a big image (a LazyImage or what ``open_image`` takes) block by block into ``out`` (zarr or
        numpy); the same labels as ``predict`` pixel for pixel, one block in memory at a time."""
        image = image if isinstance(image, LazyImage) else open_image(image)
        return (yield from label_blocks_iter(self, image, out, todo, on_block))

    def predict(self, image) -> np.ndarray:
        return run(self.predict_iter(image))

    # ---- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (state dict + card) and ``path.with_suffix('.json')`` (the card), atomically."""
        path = Path(path)
        payload = {
            "config": dataclasses.asdict(self.net.config),
            "classes": [int(c) for c in self.classes],
            "class_names": self.class_names,
            "card": self.card,
        }
        modelfile.save(path, modelfile.SEGNET, {**payload, "state_dict": modelfile.state_dict(self.net)})
        modelfile.save_json(path.with_suffix(".json"), modelfile.SEGNET, payload)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", tta: bool | None = None) -> "SegModel":
        net, payload = modelfile.load_network(path, modelfile.SEGNET, lambda config: SegNet(NetConfig(**config)))
        classes = modelfile.build(path, modelfile.SEGNET, lambda: [int(c) for c in payload["classes"]])
        card = payload.get("card", {})
        use_tta = card.get("params", {}).get("tta", False) if tta is None else tta
        return cls(net, classes, card, payload.get("class_names"), tta=use_tta, device=device)


def training_set(images: Sequence, labels: Sequence, known: Sequence | None = None):
    """Checked training data: (normalised images (3, H, W), class-index maps (−1 = unknown), class values)."""
    images, labels = as_list(images, "training images"), as_list(labels, "training labels")
    if len(images) != len(labels) or not images:
        raise FewcellError("Give one label image per training image (and at least one).")
    arrs = [as_image2d(im, f"training image {i + 1}") for i, im in enumerate(images)]
    labs = []
    for i, (a, lab) in enumerate(zip(arrs, labels)):
        lab = np.asarray(lab)
        if lab.shape != a.shape[:2]:
            raise FewcellError(
                f"The labels of training image {i + 1} are {'×'.join(map(str, lab.shape))} but the image is "
                f"{a.shape[0]}×{a.shape[1]}; give labels of the image's height and width."
            )
        labs.append(label_values(lab, f"labels of training image {i + 1}"))
    if known is not None and (len(known) != len(labs) or any(np.shape(k) != lab.shape for k, lab in zip(known, labs))):
        raise FewcellError("Give one known-pixels mask per training image, of the image's height and width.")
    masks = [np.ones(lab.shape, bool) for lab in labs] if known is None else [np.asarray(k, bool) for k in known]
    classes = np.unique(np.concatenate([lab[m] for lab, m in zip(labs, masks)]))
    require_two_classes(classes, "training labels hold", "a network needs a structure and background")
    index = [class_index(lab, m, classes) for lab, m in zip(labs, masks)]
    return [normalize(a, intensity_range(a)) for a in arrs], index, classes


def sample_batch(norm: list, index: list, pick: np.ndarray, crop: int, batch: int, rng: np.random.Generator,
                 deform: float = 0.0, colour: float = 0.0):
    """``batch`` augmented crops (each with some known pixels where possible), images drawn with weights ``pick``;
    with ``deform`` > 0 each is also warped elastically (displacements of that standard deviation, in pixels); with
    ``colour`` > 0 a colour image's channels are each jittered (:attr:`TrainParams.colour_jitter`)."""
    xs, ys = [], []
    for _ in range(batch):
        i = int(rng.choice(len(norm), p=pick))
        H, W = index[i].shape
        for _try in range(10):  # a crop with some known pixels
            y, x = rng.integers(0, H - crop + 1), rng.integers(0, W - crop + 1)
            if (index[i][y : y + crop, x : x + crop] >= 0).any():
                break
        xi, yi = augment(norm[i][:, y : y + crop, x : x + crop], index[i][y : y + crop, x : x + crop], rng)
        if deform > 0:
            xi, yi = elastic(xi, yi, rng, deform)
        if colour > 0 and not (np.array_equal(xi[0], xi[1]) and np.array_equal(xi[0], xi[2])):
            xi = xi * rng.uniform(1 - colour, 1 + colour, (3, 1, 1)) + rng.uniform(-colour, colour, (3, 1, 1)) / 2
            xi = xi.astype(np.float32)
        xs.append(xi)
        ys.append(yi)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def seg_loss(logits: torch.Tensor, y: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """Cross entropy over the known pixels (y ≥ 0), plus ``dice_weight`` × (1 − their soft Dice)."""
    loss = F.cross_entropy(logits, y, ignore_index=-1)
    if dice_weight:
        valid = (y >= 0).unsqueeze(1).float()
        prob = logits.softmax(1) * valid
        onehot = F.one_hot(y.clamp_min(0), logits.shape[1]).permute(0, 3, 1, 2).float() * valid
        loss = loss + dice_weight * (1 - soft_dice(prob, onehot, dim=(0, 2, 3)).mean())
    return loss


def new_segnet(p: TrainParams, n_classes: int) -> SegNet:
    """A fresh stage-2 network; with ``p.init == "pretrained"`` its body holds the embedding network's weights."""
    if p.init == "scratch":
        return SegNet(NetConfig(base=p.base, depth=p.depth, embed_dim=n_classes))
    emb = load_model(p.weights)
    cfg = emb.config
    net = SegNet(NetConfig(in_channels=cfg.in_channels, base=cfg.base, depth=cfg.depth, embed_dim=n_classes))
    body = {k: v for k, v in emb.state_dict().items() if not k.startswith("head.")}
    net.load_state_dict(body, strict=False)
    return net


def train_iter(images: Sequence, labels: Sequence, known: Sequence | None = None, params: TrainParams | None = None,
               class_names: dict | None = None, card: dict | None = None, confidence: Sequence | None = None,
               keep: Sequence | None = None) -> Generator[Progress, None, SegModel]:
    """Train a SegNet (start: ``params.init``) on ``labels``, one per image (``known`` masks limit the loss; so do
    ``confidence`` maps, stage 1's ``PseudoResult.confidence``, below ``params.min_confidence``). With
    ``params.rounds`` > 1 (self-training) each further round trains a new network on the last one's labels of the
    images, but where ``keep`` (one mask per image: the annotated pixels, the user's fixes) is true."""
    p = params or TrainParams()
    p.check()
    check_keep(keep, labels)
    model, total, done, t0 = None, p.steps * p.rounds, 0, time.time()
    for r in range(p.rounds):
        if r:  # the last network's labels, the kept pixels' own
            yield Progress(r * p.steps, total, f"round {r + 1} of {p.rounds}: labelling the images")
            new = [relabel(model, im, lab, None if keep is None else keep[i])
                   for i, (im, lab) in enumerate(zip(images, labels))]
            if not set(model.classes) <= set().union(*(np.unique(n).tolist() for n in new)):
                # the network lost a class: a round on its labels could not learn it back
                yield Progress(total, total, f"stopped after round {r}: its network's labels lost a class")
                break
            labels, known, confidence = new, None, None
        tag = f"round {r + 1} of {p.rounds}: " if p.rounds > 1 else ""
        model = yield from relay(fit_iter(images, labels, known, p, class_names, card, confidence),
                                 lambda q, r=r: Progress(r * p.steps + q.done, total, tag + q.message))
        done = r + 1
    model.card["rounds"] = done  # the rounds trained (fewer than asked where a network lost a class)
    model.card["wall_seconds"] = round(time.time() - t0, 1)  # every round's, and the labelling between them
    return model


def relabel(model: SegModel, image, labels, keep) -> np.ndarray:
    """``model``'s labels of ``image``, but ``labels``' where ``keep`` is true (a self-training round's targets)."""
    out = model.predict(image)
    return out if keep is None else np.where(np.asarray(keep, bool), np.asarray(labels).astype(out.dtype), out)


def check_keep(keep: Sequence | None, labels: Sequence) -> None:
    """One mask of kept labels per labels array, of its shape (said before any training)."""
    if keep is None:
        return
    if len(keep) != len(labels):
        raise FewcellError(f"Give one mask of kept labels per training image ({len(labels)}), not {len(keep)}.")
    for i, (k, lab) in enumerate(zip(keep, labels)):
        if np.shape(k) != np.shape(lab):
            raise FewcellError(f"The mask of kept labels of training image {i + 1} is "
                               f"{'×'.join(map(str, np.shape(k)))} but its labels are "
                               f"{'×'.join(map(str, np.shape(lab)))}; give masks of their shape.")


def fit_iter(images: Sequence, labels: Sequence, known: Sequence | None, p: TrainParams, class_names: dict | None,
             card: dict | None, confidence: Sequence | None) -> Generator[Progress, None, SegModel]:
    """One round of :func:`train_iter`: a new SegNet trained ``p.steps`` steps on ``labels``."""
    if confidence is not None and p.min_confidence > 0:
        sure = [np.asarray(c, np.float32) >= p.min_confidence for c in confidence]
        known = sure if known is None else [np.asarray(k, bool) & c for k, c in zip(known, sure)]
    norm, index, classes = training_set(images, labels, known)
    crop = min(p.crop, *(min(idx.shape) for idx in index))
    crop -= crop % 8 if crop >= 16 else 0

    t0 = time.time()
    device = select_device(p.device)
    precision = resolve_precision(device, p.precision)  # what "auto" computes in here: resolved once, not per step
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    net = new_segnet(p, len(classes)).to(device)
    # fused: one kernel for every tensor, 1 ms a step on 2 cores against 8 ms in a Python loop (the same update)
    opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=1e-4, fused=True)
    warm = max(1, p.steps // 10)  # linear warm-up, then cosine decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t, p.steps) / p.steps))
    )
    sizes = np.array([(idx >= 0).sum() for idx in index], float)
    avg = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(p.ema), use_buffers=True) if p.ema else None
    net.train()
    running = None
    yield Progress(0, p.steps, "training")
    for step in range(p.steps):
        x, y = sample_batch(norm, index, sizes / sizes.sum(), crop, p.batch, rng, p.deform, p.colour_jitter)
        with training_autocast(device, precision):
            logits = net(x.to(device))
        loss = seg_loss(logits.float(), y.to(device), p.dice_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if avg is not None:
            avg.update_parameters(net)
        if not math.isfinite(loss.item()):
            raise FewcellError(f"Training diverged at step {step + 1} (its loss is not a number); lower the learning "
                               "rate and train again.")
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        yield Progress(step + 1, p.steps, f"loss {running:.4f}")
    net = (net if avg is None else avg.module).eval()
    full_card = {
        "kind": "segmentation network (U-Net trained " + ("from scratch)" if p.init == "scratch" else
                                                           "from the embedding weights)"),
        "params": dataclasses.asdict(p),
        "training_images": len(norm),
        "known_pixels": int(sum((idx >= 0).sum() for idx in index)),  # what the loss saw (known, confident)
        "final_loss": running,
        "precision": precision,
        "wall_seconds": round(time.time() - t0, 1),
        "torch": str(torch.__version__),
        **(card or {}),
    }
    return SegModel(net, classes, full_card, class_names, tta=p.tta, device=str(device))
