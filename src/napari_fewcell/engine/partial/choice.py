"""Stage 1's last step: which network, on which path, labels the images — chosen on boxes held out of fine-tuning.

Fine-tuning on the user's boxes can make the embeddings worse on an image type the pre-trained network never saw
(ISBI with weights that never saw it: pseudo-labels 77.5 against 82.0 for one-shot from the same boxes;
docs/benchmarks/), and neither the per-epoch check (attention alone) nor the fine-tuned network's own self-check
(it was trained on the very pixels it would check) can tell. So each candidate labels the held-out boxes from a
prompt of the training boxes, exactly as it would label the images (the whole image is segmented, its box scored),
and the best is kept. The first candidate — the pre-trained network on the one-shot default path, what one-shot
Segment gives from the same boxes — wins ties, so the pseudo-labels are one-shot's unless fine-tuning measurably
helps on boxes it never saw.
"""
from __future__ import annotations

from typing import Generator, Sequence

import numpy as np

from ..core.annotation import AnnotatedImage
from ..core.progress import Progress, relay
from ..nets.unet import EmbedNet
from ..prompt.annotated import mean_dice
from ..prompt.params import PromptParams
from ..prompt.segmenter import Segmenter

TIE = 0.005  #: a candidate must beat the first one by more than this mean held-out Dice to be chosen
NAMES = {"pre-trained": "the pre-trained network", "fine-tuned": "the fine-tuned network"}


def candidates(adapt: str, tuned: bool) -> list[tuple[str, str]]:
    """(network, path) pairs, the one-shot default first, then the fine-tuned network on attention alone. Not the
    fine-tuned network on ``adapt``: its own self-check cannot choose its path (it has seen the boxes it would hold
    out), so on "auto" it chose attention and labelled the held-out boxes exactly as attention alone did on every
    LODO run that had it (ISBI twice, usiigaci), at 15–25 s a check on 15 boxes."""
    return [("pre-trained", adapt)] + ([("fine-tuned", "none")] if tuned else [])


def make_segmenter(net: EmbedNet, p, device, adapt: str) -> Segmenter:
    """Stage 1's one-shot segmenter. Sparse boxes are left to the self-check (PromptParams.sparse_balance 0): the
    rule was measured on one-box prompts, not on workflow 2, whose figures were made without it."""
    return Segmenter(PromptParams(tau=p.tau, prototypes=p.prototypes, device=str(device), adapt=adapt,
                                  sparse_balance=0.0), model=net)


def by_image(boxes: Sequence[tuple[int, tuple]]) -> dict[int, list]:
    """(image index, (y, x, h, w)) pairs grouped by image, in image order."""
    grouped: dict[int, list] = {}
    for i, b in sorted(boxes, key=lambda ib: ib[0]):
        grouped.setdefault(i, []).append(b)
    return grouped


def box_prompt(seg: Segmenter, data: Sequence[AnnotatedImage], boxes: Sequence[tuple[int, tuple]]):
    """One prompt of ``boxes`` ((image index, (y, x, h, w)) pairs), grouped by image."""
    (first, bxs), *rest = by_image(boxes).items()
    return seg.prepare_prompt_boxes(data[first].image, data[first].labels, bxs,
                                    more=[(data[i].image, data[i].labels, b) for i, b in rest])


def held_out_score(seg: Segmenter, data, train, val) -> Generator[Progress, None, tuple[float, dict]]:
    """Mean over the held-out boxes of the mean per-class Dice of their pixels, the image labelled from a prompt
    of the training boxes on the segmenter's path (an image holding several held-out boxes is segmented once); and
    the self-check's estimates of the paths on the training boxes ({} on a path that is not checked)."""
    prompt = box_prompt(seg, data, train)
    adaptation = yield from seg.adapt_iter(prompt)
    scores = []
    for i, boxes in by_image(val).items():
        labels = yield from relay(seg.segment_iter(data[i].image, prompt), Progress(0, 0, "checking a held-out box"))
        for y, x, h, w in boxes:
            truth = data[i].labels[y : y + h, x : x + w]
            score = mean_dice(labels[y : y + h, x : x + w], truth)
            scores.append(float(np.mean(labels[y : y + h, x : x + w] == truth)) if score is None else score)
    return float(np.mean(scores)), dict(adaptation.check)


def decision(network: str, path: str, why: str, check: dict | None = None, estimates: dict | None = None) -> dict:
    """The record of which network and path label the images (``PseudoResult.labeller``, the model card).
    ``estimates``: the chosen candidate's self-check of its paths on the training boxes, which labelling all the
    images reuses (the same path, no second check: 12 s sooner on ISBI's 15 boxes)."""
    return {"network": network, "path": path, "check": check or {}, "why": why, "estimates": estimates or {}}


def choose_labeller(data, train, val, nets: dict, p, device) -> Generator[Progress, None, dict]:
    """{"network", "path", "check": {"network/path": held-out Dice}, "why"} of the chosen candidate; without
    held-out boxes (fewer than three boxes) the fine-tuned network on ``p.adapt``, unchecked; when fine-tuning kept
    the pre-trained network (no epoch bettered the held-out boxes) there is nothing to weigh."""
    if not val:
        return decision("fine-tuned" if "fine-tuned" in nets else "pre-trained", p.adapt,
                        "fewer than 3 boxes, so no box was held out to check it")
    pairs = candidates(p.adapt, "fine-tuned" in nets)
    if len(pairs) == 1:
        return decision("pre-trained", p.adapt, "no fine-tuning epoch bettered the held-out boxes")
    check, estimates = {}, {}
    for n, (net, path) in enumerate(pairs):
        yield Progress(n, len(pairs), f"checking {NAMES[net]} ({path}) on held-out boxes")
        seg = make_segmenter(nets[net], p, device, path)
        check[(net, path)], estimates[(net, path)] = yield from held_out_score(seg, data, train, val)
    first = check[pairs[0]]
    best = max(pairs, key=lambda k: check[k])
    chosen = best if check[best] > first + TIE else pairs[0]
    return decision(*chosen, "held-out boxes", {f"{k[0]}/{k[1]}": round(v, 4) for k, v in check.items()},
                    estimates[chosen])


def describe_labeller(labeller: dict | None) -> str:
    """One line, e.g. 'Labelled with the pre-trained network (auto): held-out boxes pre-trained/auto 0.851,
    fine-tuned/none 0.802'."""
    if not labeller:
        return ""
    text = f"Labelled with {NAMES[labeller['network']]} ({labeller['path']})"
    if not labeller["check"]:
        return text + ": " + labeller["why"]
    return text + ": held-out boxes " + ", ".join(f"{k} {v:.3f}" for k, v in labeller["check"].items())
