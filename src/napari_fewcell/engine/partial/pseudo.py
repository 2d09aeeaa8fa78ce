"""Workflow 2, stage 1 — partial labels → pseudo-labels (paper 000 §3.3, Eq. 4–6).

The pre-trained embedding network is fine-tuned on the user's images with

    Loss = Loss_pseudo + Loss_prompt                                    (Eq. 4)

* Loss_pseudo (Eq. 5): query crops from the images attend to a prompt box's pixels; the
  cross entropy of the attention output against its own argmax over the unannotated
  pixels (against the true label where a pixel is annotated).
* Loss_prompt (Eq. 6): the pixels of another annotated box (a different prompt pair; an
  augmented view of the same box when there is only one) attend to the prompt and are
  scored against their labels.

Then every image is labelled by attention to all annotated boxes at once, and annotated
pixels keep their own labels. With ``full`` images (one-shot fine-tuning, paper Table 1)
the same loop reduces to the supervised loss on the labelled image.

    result = run(pseudolabel_iter([annotate(img, lab, [(y, x, 64, 64)]), annotate(img2)]))
    result.labels  # one (H, W) label array per image
"""
from __future__ import annotations

import copy
import math
import time
from typing import Generator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.annotation import AnnotatedImage, annotate, as_list, check_annotations, class_index
from ..core.augment import MILD, augment
from ..core.blocks import label_dtype_for
from ..core.device import select_device
from ..core.errors import FewcellError
from ..core.geometry import with_context
from ..core.image import intensity_range, normalize
from ..core.losses import soft_dice
from ..core.progress import Progress, relay, run
from ..nets.unet import EmbedNet, load_model
from .choice import choose_labeller, decision, make_segmenter
from .params import PseudoParams


class PseudoResult(NamedTuple):
    labels: list[np.ndarray]  # one per image, label values
    classes: np.ndarray  # label values, index order of the network's outputs
    model: EmbedNet  # the fine-tuned embedding network
    #: per epoch (0 = before fine-tuning): {"epoch", "loss_pseudo", "loss_prompt", "box_dice", "kept", "seconds"}
    history: list[dict]
    confidence: list[np.ndarray]  # per image: probability of the chosen class (1 where annotated), float16
    #: which network and path labelled the images, and their held-out box Dice (choice.choose_labeller)
    labeller: dict | None = None
    finetuned: EmbedNet | None = None  #: the fine-tuned network at its kept epoch, whether or not it labelled


class _Trainer:
    """Holds the normalised images and index labels; samples prompts and crops."""

    def __init__(self, data: Sequence[AnnotatedImage], classes: np.ndarray, p: PseudoParams, model: EmbedNet,
                 device: torch.device):
        self.p, self.model, self.device = p, model, device
        self.tau = float(p.tau if p.tau is not None else model.config.tau)
        self.rng = np.random.default_rng(p.seed)
        self.gen = torch.Generator().manual_seed(p.seed)
        self.K = len(classes)
        self.images = [normalize(d.image, intensity_range(d.image)) for d in data]
        self.index = [class_index(d.labels, d.known, classes) for d in data]  # (H, W) class index, -1 = unknown
        boxes = [(i, b) for i, d in enumerate(data) for b in d.boxes]
        two = [len(np.unique(self._box_index(i, b))) >= 2 for i, b in boxes]
        if not any(two):
            raise FewcellError(
                "No annotated box holds both a structure and background; paint both inside at least one box."
            )
        # With 3+ boxes, one box in five (at least one: the last ones holding both classes) is held out
        # of fine-tuning: neither prompt, nor prompt-loss query, nor supervised pixel. It scores each
        # epoch (box_dice) and, like every box, labels the images at the end.
        self.val: list = []
        if len(boxes) >= 3:
            order = [k for k in range(len(boxes)) if two[k]][::-1] + [k for k in range(len(boxes)) if not two[k]]
            n_val = max(1, len(boxes) // 5)
            val = set(order[:n_val]) if sum(two) > n_val else set()
            self.val = [boxes[k] for k in sorted(val)]
        self.val_labels = [self._box_index(i, b).copy() for i, b in self.val]
        for i, (y, x, h, w) in self.val:
            self.index[i][y : y + h, x : x + w] = -1  # unknown to the training losses
        self.boxes = [b for b in boxes if b not in self.val]
        self.prompts = [(i, b) for (i, b), ok in zip(boxes, two) if ok and (i, b) not in self.val]
        # query crops are drawn from images in proportion to their unknown pixels (all pixels in one-shot mode)
        unknown = np.array([(idx < 0).sum() for idx in self.index], float)
        if unknown.sum() == 0:
            unknown = np.array([idx.size for idx in self.index], float)
        self.query_weights = unknown / unknown.sum()
        self.crop = min(p.crop, *(min(d.shape) for d in data))
        if self.crop >= 16:
            self.crop -= self.crop % 8
        self.unknown_total = int(unknown.sum())

    def _box_embedding(self, i, box) -> torch.Tensor:
        y, x, h, w = box
        y0, y1, x0, x1 = with_context(box, self.p.context, self.index[i].shape)
        e = self._embed(np.ascontiguousarray(self.images[i][None, :, y0:y1, x0:x1]))[0]
        return e[:, y - y0 : y - y0 + h, x - x0 : x - x0 + w].reshape(e.shape[0], -1).T

    @torch.no_grad()
    def box_dice(self) -> float | None:
        """Held-out check on the user's own annotation: every validation box (never trained on) is
        labelled by attention to the training boxes' pixels (4096 random keys, the same every
        epoch) and scored by its mean per-class Dice; the mean over validation boxes. None
        without validation boxes (fewer than three boxes)."""
        if not self.val:
            return None
        keys = torch.cat([self._box_embedding(i, b) for i, b in self.boxes])
        klab = torch.cat([torch.from_numpy(self._box_index(i, b).reshape(-1)) for i, b in self.boxes]).to(self.device)
        sel = torch.randperm(len(keys), generator=torch.Generator().manual_seed(self.p.seed + 1))[:4096]
        keys, v = keys[sel.to(self.device)], F.one_hot(klab[sel.to(self.device)], self.K).float()
        scores = []
        for (i, b), truth in zip(self.val, self.val_labels):
            o = F.scaled_dot_product_attention(self._box_embedding(i, b)[None, None], keys[None, None], v[None, None],
                                               scale=1.0 / self.tau)[0, 0]
            pred, truth = o.argmax(1).cpu().numpy(), truth.reshape(-1)
            present = np.union1d(np.unique(pred), np.unique(truth))
            scores.append(float(np.mean([2 * ((pred == k) & (truth == k)).sum()
                                         / ((pred == k).sum() + (truth == k).sum()) for k in present])))
        return float(np.mean(scores))

    def _box_index(self, i, box):
        y, x, h, w = box
        return self.index[i][y : y + h, x : x + w]

    def _region(self, i, box, jitter):
        """Augmented (3, h', w') region around ``box`` with the box's index labels (−2 outside the box)."""
        y, x, h, w = box
        y0, y1, x0, x1 = with_context(box, self.p.context, self.index[i].shape)
        lab = np.full((y1 - y0, x1 - x0), -2, np.int64)
        lab[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = self._box_index(i, box)
        return augment(self.images[i][:, y0:y1, x0:x1], lab, self.rng, MILD if jitter else None)

    def _embed(self, imgs: np.ndarray) -> torch.Tensor:
        return self.model.any_size(torch.from_numpy(imgs).to(self.device), mode="replicate")

    def _pixels(self, emb: torch.Tensor, lab: np.ndarray, sel_max: int):
        """(n, D) embeddings and (n,) index labels of up to ``sel_max`` pixels with lab != −2."""
        lab_t = torch.from_numpy(lab.reshape(-1)).to(self.device)
        flat = emb.reshape(emb.shape[0], -1).T
        ok = torch.nonzero(lab_t != -2)[:, 0]
        if len(ok) > sel_max:
            ok = ok[torch.randperm(len(ok), generator=self.gen)[:sel_max].to(self.device)]
        return flat[ok], lab_t[ok]

    def step(self):
        p = self.p
        pi, pbox = self.prompts[self.rng.integers(len(self.prompts))]
        img, lab = self._region(pi, pbox, jitter=False)
        keys, klab = self._pixels(self._embed(img[None])[0], lab, p.key_pixels)
        values = F.one_hot(klab, self.K).float()

        # Loss_pseudo: query crops attend to the prompt; targets = own argmax (true label where known)
        crops, labs = [], []
        for _ in range(p.batch):
            i = int(self.rng.choice(len(self.images), p=self.query_weights))
            H, W = self.index[i].shape
            y, x = self.rng.integers(0, H - self.crop + 1), self.rng.integers(0, W - self.crop + 1)
            ci, cl = augment(self.images[i][:, y : y + self.crop, x : x + self.crop],
                          self.index[i][y : y + self.crop, x : x + self.crop], self.rng)
            crops.append(ci)
            labs.append(cl)
        emb = self._embed(np.stack(crops))
        losses = []
        for b in range(p.batch):
            q, ql = self._pixels(emb[b], labs[b], p.query_pixels)
            o = F.scaled_dot_product_attention(q[None, None], keys[None, None], values[None, None],
                                               scale=1.0 / self.tau)[0, 0]
            target = torch.where(ql >= 0, ql, o.argmax(1).detach())
            losses.append(self._loss(o, target))
        loss_pseudo = torch.stack(losses).mean()

        # Loss_prompt: another prompt pair (or another view of the same) scored against its labels
        others = [b for b in self.boxes if b != (pi, pbox)]
        qi, qbox = others[self.rng.integers(len(others))] if others else (pi, pbox)
        img2, lab2 = self._region(qi, qbox, jitter=True)
        q, ql = self._pixels(self._embed(img2[None])[0], lab2, p.query_pixels)
        o = F.scaled_dot_product_attention(q[None, None], keys[None, None], values[None, None],
                                           scale=1.0 / self.tau)[0, 0]
        loss_prompt = self._loss(o, ql)
        return loss_pseudo, loss_prompt

    def _loss(self, o: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross entropy of attention probabilities ``o`` (n, K) against ``target`` (+ optional soft Dice)."""
        loss = F.nll_loss(torch.log(o.clamp_min(1e-6)), target)
        if self.p.dice_weight:
            t = F.one_hot(target, self.K).float()
            loss = loss + self.p.dice_weight * (1 - soft_dice(o, t, dim=0).mean())
        return loss


def validate(data: Sequence[AnnotatedImage]) -> np.ndarray:
    """Every check that can fail before any work starts; returns the class values."""
    classes = check_annotations(data, need_unknown=True)
    if not any(d.boxes for d in data):
        raise FewcellError("No annotated box to take a prompt from; draw a box and paint inside it.")
    if not any(len(np.unique(d.labels[y : y + h, x : x + w])) >= 2 for d in data for y, x, h, w in d.boxes):
        raise FewcellError(
            "No annotated box holds both a structure and background; paint both inside at least one box."
        )
    return classes


def pseudolabel_iter(data: Sequence[AnnotatedImage], params: PseudoParams | None = None,
                     model: EmbedNet | None = None) -> Generator[Progress, None, PseudoResult]:
    """Stage 1: fine-tune (``params.epochs``), choose the network and path that label (choice.choose_labeller), and
    label every image. Yields Progress per step."""
    p = params or PseudoParams()
    p.check()
    classes = validate(data)
    device = select_device(p.device)
    if model is None:
        model = load_model(p.weights, device)
    model = model.to(device)
    torch.manual_seed(p.seed)
    history: list[dict] = []
    labeller, tuned = decision("pre-trained", p.adapt, "no fine-tuning (0 epochs)"), None
    if p.epochs:
        tr = _Trainer(data, classes, p, model, device)
        pretrained = copy.deepcopy(model)
        history = yield from fine_tune(tr, model, p)
        tuned = model if any(h["kept"] for h in history[1:]) else None
        nets = {"pre-trained": pretrained, **({"fine-tuned": tuned} if tuned is not None else {})}
        labeller = yield from choose_labeller(data, tr.boxes, tr.val, nets, p, device)
        model = nets[labeller["network"]]
    out, confidence = yield from label_all(data, classes, p, model, device, labeller["path"], labeller["estimates"])
    return PseudoResult(out, classes, model, history, confidence, labeller, tuned)


def snapshot(model: EmbedNet) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fine_tune(tr: _Trainer, model: EmbedNet, p: PseudoParams) -> Generator[Progress, None, list[dict]]:
    """Fine-tune ``model`` in place for up to ``p.epochs`` epochs; leaves it at the kept epoch (the best held-out
    box Dice with ``p.keep_best``, else the last). A loss that is no longer finite (a learning rate far too high)
    stops it at the last epoch before. Returns the history, one entry per epoch (0 = the pre-trained network)."""
    steps = p.steps_per_epoch or int(np.clip(math.ceil(tr.unknown_total / (p.batch * tr.crop**2)), 10, 200))
    model.eval()  # BatchNorm statistics stay frozen: a few crops are too small a batch to re-estimate them
    for prm in model.parameters():
        prm.requires_grad_(True)
    # not fused (stage 2's is): that would save 1–2 s, but its rounding moved ISBI's plateau one epoch later (+18 s)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    total = p.epochs * steps
    yield Progress(0, total, "fine-tuning")
    best_dice, best_epoch, good = tr.box_dice(), 0, snapshot(model)
    best_state = good if best_dice is not None else None
    history = [{"epoch": 0, "loss_pseudo": None, "loss_prompt": None, "box_dice": best_dice, "seconds": 0.0}]
    for epoch in range(p.epochs):
        t0, sums = time.time(), np.zeros(2)
        for s in range(steps):
            lp, lq = tr.step()
            loss = lp + p.prompt_weight * lq
            if not torch.isfinite(loss):
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += (lp.item(), lq.item())
            mean = sums / (s + 1)
            yield Progress(epoch * steps + s + 1, total,
                           f"epoch {epoch + 1}/{p.epochs} · pseudo {mean[0]:.3f} · prompt {mean[1]:.3f}")
        if not (torch.isfinite(loss) and all(torch.isfinite(v).all() for v in model.state_dict().values())):
            model.load_state_dict(good)  # diverged: back to the last whole epoch
            history[-1]["diverged_after"] = True
            break
        good, dice = snapshot(model), tr.box_dice()
        history.append({"epoch": epoch + 1, "loss_pseudo": float(mean[0]), "loss_prompt": float(mean[1]),
                        "box_dice": dice, "seconds": round(time.time() - t0, 2)})
        if dice is not None and dice > best_dice:
            best_dice, best_epoch, best_state = dice, epoch + 1, good
        if dice is not None and p.patience and epoch + 1 - best_epoch >= p.patience:
            break  # a plateau: the held-out boxes have not improved for `patience` epochs
    kept = best_epoch if p.keep_best and best_state is not None else history[-1]["epoch"]
    if kept != history[-1]["epoch"]:
        model.load_state_dict(best_state)
    for h in history:
        h["kept"] = h["epoch"] == kept
    return history


def label_all(data: Sequence[AnnotatedImage], classes, p: PseudoParams, model: EmbedNet, device, adapt: str,
              estimates: dict | None = None) -> Generator[Progress, None, tuple[list, list]]:
    """Label every image with ``model`` on the path ``adapt``, every box its prompt; known pixels keep their labels
    (confidence 1). ``estimates``: the paths' self-check on some of the boxes, made before (the labeller's choice):
    reused, not made again. Returns (labels, confidence) per image."""
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    seg = make_segmenter(model, p, device, adapt)
    boxed = [d for d in data if d.boxes]  # one prompt of every box, adapted as one-shot Segment adapts it
    prompt = seg.prepare_prompt_boxes(boxed[0].image, boxed[0].labels, boxed[0].boxes,
                                      more=[(d.image, d.labels, d.boxes) for d in boxed[1:]])
    yield Progress(0, len(data), "adapting to the boxes")
    yield from seg.adapt_iter(prompt, estimates or None)
    out, confidence = [], []
    for n, d in enumerate(data):
        step = Progress(n, len(data), f"labelling {d.name or n + 1}")
        yield step
        labels, conf = yield from relay(seg.segment_iter(d.image, prompt, confidence=True), step)
        labels = labels.astype(label_dtype_for(classes))
        labels[d.known] = d.labels[d.known]
        conf[d.known] = 1.0
        out.append(labels)
        confidence.append(conf)
    yield Progress(len(data), len(data), "pseudo-labels done")
    return out, confidence


def describe_epoch(h: dict) -> str:
    """One line for a history entry, e.g. 'epoch 3: loss pseudo 0.071, prompt 0.256; held-out box Dice 0.874'."""
    parts = [f"epoch {h['epoch']}"]
    if h.get("loss_pseudo") is not None:
        parts.append(f": loss pseudo {h['loss_pseudo']:.3f}, prompt {h['loss_prompt']:.3f}")
    else:
        parts.append(" (pre-trained network)")
    if h.get("box_dice") is not None:
        parts.append(f"; held-out box Dice {h['box_dice']:.3f}")
    if h.get("kept"):
        parts.append(" — kept")
    if h.get("diverged_after"):
        parts.append("; the next epoch diverged (loss not finite: lower the learning rate), so fine-tuning stopped")
    return "".join(parts)


def pseudolabel(images: Sequence, labels: Sequence, boxes: Sequence, params: PseudoParams | None = None,
                progress=None) -> list[np.ndarray]:
    """One call: pseudo-labels for every image from labels known only inside ``boxes``.

    ``labels[i]`` is None for an unannotated image, else an array of image i's height and
    width of which only the pixels inside every box in ``boxes`` are read (value v = class v).
    """
    images, labels, boxes = as_list(images, "images"), as_list(labels, "labels"), as_list(boxes, "boxes")
    if len(labels) != len(images):
        raise FewcellError("Give one labels entry per image (None for an unannotated image).")
    data = [annotate(im, lab, boxes if lab is not None else (), name=f"image {i + 1}")
            for i, (im, lab) in enumerate(zip(images, labels))]
    return run(pseudolabel_iter(data, params), progress).labels
