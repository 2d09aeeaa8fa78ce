"""bench_boxes.py's prompts: a seeded triple of 64×64 boxes on one train image, one box's result and its simulated
correction stroke, and fewcell and the random forest fitted on one box, three boxes, or one box + the stroke."""
from __future__ import annotations

import copy
import dataclasses
import sys

import numpy as np
from common import (
    BOX,
    Dataset,
    ForestPrompt,
    RFBaseline,
    box_fractions,
    dice_pct,
    log,
)
from strokes import correction_stroke

from napari_fewcell.engine.prompt import PromptParams, Segmenter, local_changes

LO, HI = 0.05, 0.95  #: foreground fraction of every box
F1, F3, FC = "fewcell 1 box", "fewcell 3 boxes", "fewcell 1 box + stroke"
R1, R3, RC = "RF 1 box", "RF 3 boxes", "RF 1 box + stroke"
METHODS = (F1, F3, FC, R1, R3, RC)


# ---- prompts: a triple of boxes on one image, and the correction stroke ----------------------------------
def seeded_triple(seed: int, ds: Dataset) -> tuple[str, list[tuple[int, int]]]:
    """Seeded (train id, [(y, x)] × 3): three non-overlapping BOX×BOX boxes with LO–HI foreground on one image.
    The train images in a seeded order, the first that holds three such boxes; each box drawn uniformly among the
    valid positions that overlap no box drawn before (the first box is drawn as ``common.seeded_box`` draws its
    box, so it is the same box when that image holds a triple)."""
    rng = np.random.default_rng(seed)
    for src in rng.permutation(ds.train):
        frac = box_fractions(ds.labels[src])
        valid = (frac >= LO) & (frac <= HI)
        boxes = []
        for _ in range(3):
            ys, xs = np.nonzero(valid)
            if not len(ys):
                break
            k = int(rng.integers(len(ys)))
            y, x = int(ys[k]), int(xs[k])
            boxes.append((y, x))
            valid[max(0, y - BOX + 1) : y + BOX, max(0, x - BOX + 1) : x + BOX] = False  # would overlap (y, x)
        if len(boxes) == 3:
            return str(src), boxes
    sys.exit(f"No train image of {ds.name} ({ds.folder}) holds three non-overlapping {BOX}×{BOX} boxes with "
             f"{LO:.0%}–{HI:.0%} foreground.")


@dataclasses.dataclass
class Triple:
    """One triple of boxes and everything the six methods share: the one-box fewcell prompt (adapted), the stroke,
    and the three forests (fitted on the prompt image's features, computed once)."""

    seed: int
    src: str
    boxes: list  #: [(y, x)] × 3; the first is the one-box prompt
    fg: list  #: foreground % of each box
    stroke: dict
    self_dice: float  #: fewcell one-box Dice % on its own prompt image (what the stroke corrects)
    one: tuple  #: (segmenter, prompt) of the one-box fewcell prompt
    forests: dict  #: method → fitted forest
    #: Dice % on the prompt image itself, the stroke's pixels left out: {method: Dice} for 1 box and 1 box + stroke
    own: dict = dataclasses.field(default_factory=dict)


class Fewcell:
    """fewcell prompted with a triple's first box, its three boxes, or its first box + the stroke."""

    def __init__(self, model, weights: str, adapt: str, kind: str, reach: str = "local",
                 check_strokes: bool = PromptParams.check_strokes):
        self.model, self.kind = model, kind
        self.params = {"weights": weights, "device": "cpu", "adapt": adapt, "stroke_reach": reach,
                       "check_strokes": check_strokes}

    def new(self) -> Segmenter:
        """A segmenter with a fresh copy of the network (as bench_generalise): no prompt alters another's."""
        return Segmenter(PromptParams(**self.params), model=copy.deepcopy(self.model))

    def one_box(self, ds: Dataset, src: str, box) -> tuple:
        seg = self.new()
        prompt = seg.prepare_prompt_boxes(ds.images[src], ds.labels[src], [(*box, BOX, BOX)])
        seg.adapt(prompt)
        return seg, prompt

    def prepare(self, ds: Dataset, t: Triple):
        if self.kind == F1:
            seg, prompt = t.one
        else:
            seg = self.new()
            boxes = [(y, x, BOX, BOX) for y, x in (t.boxes if self.kind == F3 else t.boxes[:1])]
            corr = t.stroke["corrections"] if self.kind == FC else None
            prompt = seg.prepare_prompt_boxes(ds.images[t.src], ds.labels[t.src], boxes, corrections=corr)
            seg.adapt(prompt)
        info = {"path": prompt.path, "check": dict(prompt.check or {}), "notes": dict(prompt.notes or {})}
        if self.kind == FC and self.params["stroke_reach"] == "local":
            seg, prompt = t.one  # a local stroke changes only the image it was painted on: the others stay as they were
        return (seg, prompt), 0.0, info

    @staticmethod
    def apply(state, img, key):
        seg, prompt = state
        return seg.segment(img, prompt), 0.0


class Forest:
    """The RF baseline of common.py with a triple's forest (fitted in :func:`make_triple`); the three RF methods
    share one ForestPrompt, so each scored image's features are computed once."""

    def __init__(self, shared: ForestPrompt, kind: str):
        self.shared, self.kind = shared, kind

    def prepare(self, ds: Dataset, t: Triple):
        return t.forests[self.kind], 0.0, {}

    def apply(self, clf, img, key):
        return self.shared.apply(clf, img, key)


def fit_forests(rf: RFBaseline, ds: Dataset, src: str, boxes, stroke) -> dict:
    """The RF baseline fitted on the first box's pixels, the three boxes' pixels, and the first box's + the
    stroke's pixels (features of the prompt image computed once)."""
    feat, lab = rf.features(ds.images[src]), ds.labels[src]
    inbox = [np.zeros(lab.shape, bool) for _ in boxes]
    for m, (y, x) in zip(inbox, boxes):
        m[y : y + BOX, x : x + BOX] = True
    sets = {R1: inbox[0], R3: inbox[0] | inbox[1] | inbox[2],
            RC: inbox[0] | (stroke["mask"] if stroke["mask"] is not None else False)}
    return {k: rf.forest(feat[m], lab[m]) for k, m in sets.items()}


def make_triple(seed: int, ds: Dataset, one: Fewcell, rf: RFBaseline) -> Triple:
    src, boxes = seeded_triple(seed, ds)
    img, lab = ds.images[src], ds.labels[src]
    seg, prompt = one.one_box(ds, src, boxes[0])
    pred = seg.segment(img, prompt)
    stroke = correction_stroke(pred, lab, boxes[0])
    fg = [100 * float(lab[y : y + BOX, x : x + BOX].mean()) for y, x in boxes]
    log(f"{ds.name}: triple {seed}: image {src}, boxes {boxes}; one-box path {prompt.path}; stroke "
        f"{stroke['stroke_px']} px on a {stroke['component_px']} px error component")
    forests = fit_forests(rf, ds, src, boxes, stroke)
    return Triple(seed, src, boxes, fg, stroke, dice_pct(pred, lab), (seg, prompt), forests,
                  own_image(ds, src, boxes[0], stroke, seg, pred, rf, forests))


def own_image(ds: Dataset, src: str, box, stroke: dict, seg, pred, rf: RFBaseline, forests: dict) -> dict:
    """Dice % on the image the user corrects, before and after the stroke, the stroke's own pixels left out
    (what the interactive loop shows the user), fewcell and the RF."""
    img, lab = ds.images[src], ds.labels[src]
    if stroke["mask"] is None:
        return {}
    keep = ~stroke["mask"]
    y, x = box
    corr = stroke["corrections"]
    after = seg.segment(img, seg.prepare_prompt_boxes(img, lab, [(y, x, BOX, BOX)], corrections=corr))
    if seg.params.stroke_reach == "local":  # the result changes only near the stroke (what the widget shows)
        after = local_changes(pred, after, corr)
    feat = rf.features(img)
    return {F1: dice_pct(pred[keep], lab[keep]), FC: dice_pct(after[keep], lab[keep]),
            R1: dice_pct(rf.predict(forests[R1], feat)[keep], lab[keep]),
            RC: dice_pct(rf.predict(forests[RC], feat)[keep], lab[keep])}
