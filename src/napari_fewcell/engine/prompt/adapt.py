"""Adapting prompt segmentation to the user's image at prompt time, and an honest estimate of its quality.

The one-shot network is good on image types like its pre-training data and worse than an
ilastik-style random forest on image types it never saw. Four paths, chosen by ``PromptParams.adapt``:

* ``"none"`` — prompt attention only (today's path, no extra cost);
* ``"forest"`` — the random forest below on the filters alone, without the network: the ilastik-style
  pixel classifier, and the fastest path on an image type far from the network's pre-training (no
  network runs on the images). Not a candidate of "auto" (see :data:`AUTO_PATHS`);
* ``"fuse"`` — a random forest on generic filters of the luminance (skimage's
  ``multiscale_basic_features``, σ 1–16: edges and texture; intensity at σ ≤ 4 only) ⊕ the attention's per-class
  probability, fitted on the box's pixels. On the box the attention is nearly perfect (its keys are
  those very pixels), so the forest is trained on the *out-of-sample* probability: each quadrant of
  the box predicted by attention to the other three; at inference the attention is over the whole box;
* ``"finetune"`` — a deep copy of the embedding network (never the shared one) fine-tuned for a few
  seconds (a fixed number of Adam steps) on augmented views of the prompt region (queries: one quadrant
  of the box; keys: the other quadrants; cross entropy of the attention output), BatchNorm in eval mode;
* ``"auto"`` — of attention alone and the fused path, the one with the better self-check estimate, the fused
  path's lowered by :data:`HANDICAP` (ties within :data:`TIE` go to the cheaper); a box with a class under
  :data:`SPARSE` takes attention alone with its classes weighed alike (:func:`sparse_adaptation`). The fine-tuned
  path is left to an explicit choice: its estimate (below) was too optimistic too often to pick by it (a TEM axon
  prompt estimated at 0.94 scored 0.79 on the whole image).

A prompt may hold several boxes and correction strokes (:class:`PromptSource` parts): every path learns from all
their pixels. With one box the self-check is leave-one-quadrant-out inside the box; with several, each box is
held out in turn (:func:`pixel_groups`); strokes are never scored, and the check's fits learn from them only with
``PromptParams.check_strokes`` (by default they read the boxes alone, so a stroke never changes the path).

The self-check is leave-one-quadrant-out inside the box: each path predicts each quadrant from the other three and
is scored by the mean per-class Dice of the held-out predictions of the four quadrants together, less
:data:`CHECK_BIAS` (the check's measured optimism on image types the network never saw). A quadrant holding a
class that the other three lack is not scored (no path can predict it there); when no quadrant is left there is no
estimate, and "auto" takes :data:`UNCHECKED`. A part bigger than :data:`~.annotated.PART_PIXELS` (a box of the whole
image) is checked, and its forest fitted, on a sample of its pixels (:meth:`BoxData.sampled`): the work grows with
the number of parts, not with their area. Fine-tuning four times would cost four budgets, so ``finetune`` is
estimated on ONE held-out quadrant (the one with the most balanced classes) as a paired difference (the attention's
estimate plus fine-tuned − attention Dice there, clipped to [0, 1]): the least reliable of the three estimates.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Generator

import numpy as np
import torch
import torch.nn.functional as F

from ..core.augment import MILD, augment
from ..core.errors import FewcellError
from ..core.optim import Adam
from ..core.progress import Progress
from ..nets import attention
from ..nets.unet import EmbedNet
from .annotated import BoxData, PromptSource, as_sources, mean_dice, sparse_share
from .filters import FIT_PIXELS, fit_forest, forest_features, forest_proba, pixel_sample

PATHS = ("none", "forest", "fuse", "finetune")  #: the paths, cheapest first (ties go to the earlier)
#: what "auto" chooses between. Not the forest: with it as a third candidate, auto did worse on validation images
#: (mean 72.8 against 74.1 without it; benchmarks/results/generalise_val_forest.md): the forest's self-check is
#: the most optimistic, so auto took it where the network was better
AUTO_PATHS = ("none", "fuse")
PATH_NAMES = {"none": "prompt attention only", "forest": "filters only, no network", "fuse": "fused with filters",
              "finetune": "fine-tuned network"}
TIE = 0.005  #: estimates closer than this are a tie (the cheaper path wins)
#: subtracted from a path's estimate when choosing (not from what the user is shown): the fused path's estimate is the
#: optimistic one. 0.03 was the largest handicap that lowered no leave-one-out report's mean, validation or test
#: (studies/choice_rules.py: +0.2 to +0.4 on validation), and the shipped weights' default path rose on their own sets
#: (ISBI 86.05 → 86.34, DSB fluorescence 87.28 → 91.88; studies/study_shipped_default.py; docs/benchmarks/)
HANDICAP = {"fuse": 0.03}
#: what "auto" takes when the self-check can score no part of the prompt (a class lies in one quadrant of the box,
#: or in one box, only): attention alone, the cheapest, as a tie went before. The fused path was better on such
#: boxes of the leave-one-out folds (TEM axons 78.59 against 74.62, Coelho 44.91 against 44.58;
#: results/generalise_test_filters4.md), attention alone in-domain (the DSB fluorescence box 036 at y 354 with the
#: shipped weights: 94.2 against 88.0; results/shipped_default_filters4_12.md), so neither is a safe default
UNCHECKED = "none"
#: subtracted from every path's held-out Dice to make the estimate a user is shown (clipped at 0; the choice, which
#: compares paths, is unchanged): a box's pixels are more alike than an image's, so the held-out Dice was optimistic by
#: +0.054 on average for the path auto chose, over the validation boxes of 6 leave-one-out folds (train images only;
#: benchmarks/results/check_pooled_val.md). On the test split it took the chosen path's error from 0.100 / 0.212
#: (mean / max) to 0.077 / 0.162 (benchmarks/check_error.py)
CHECK_BIAS = 0.05
TUNE_CONTEXT = 32  #: context of the views the network is fine-tuned on
TUNE_PIXELS = 1024  #: at most this many queries and keys per fine-tuning step

@dataclasses.dataclass
class Adaptation:
    """The chosen path of a prompt and what it needs at inference."""

    path: str
    check: dict  #: {path: estimated mean per-class Dice on the box}; {} when not checked
    forest: object | None = None  #: "forest" and "fuse": the fitted random forest
    model: EmbedNet | None = None  #: "finetune": the fine-tuned copy of the network
    #: "finetune": the prompt's keys by the fine-tuned copy; "forest": exact keys, only for their classes
    keys: attention.PromptKeys | None = None
    embedding: bool = False  #: "fuse": the forest also reads each pixel's embedding (PromptParams.fuse_embedding)
    unchecked: bool = False  #: the self-check ran but could score no part of the prompt (BoxData.fair): no estimate
    counts: np.ndarray | None = None  #: "forest" and "fuse": the pixels of each class the forest learnt from
    balance: float | None = None  #: "none": attention alone's class balance when not PromptParams.balance's

    @property
    def estimate(self) -> float | None:
        return self.check.get(self.path)


SPARSE = 0.10  #: a class under this share of the boxes' pixels: auto's sparse rule, and no figure is shown (estimate)


# ----------------------------------------------------------------------------- filters of the box
def box_features(source: PromptSource | list[PromptSource]) -> np.ndarray:
    """(M, F) filters of the labelled pixels of the part(s), each computed on its rectangle with its context."""
    return np.concatenate([s.take(forest_features(s.region)[s.box]) for s in as_sources(source)])


# ----------------------------------------------------------------------------- scoring
def held_out_probs(box: BoxData, emb: torch.Tensor | None = None, exclude: tuple = (),
                   queries: torch.Tensor | None = None, rows: np.ndarray | None = None,
                   balance: float = 0.0) -> np.ndarray:
    """(M, C) class probabilities of each box pixel by attention to the pixels of the OTHER quadrants
    (never to those of ``exclude``, whose rows stay 0). ``queries``: the held-out pixels' embeddings when they are
    not ``emb`` (a study's shifted copy of the box); the keys are always ``emb``'s. ``rows``: a mask of the pixels
    whose probabilities are wanted (the others' rows stay 0); every pixel by default. ``balance``: each quadrant's
    probabilities reweighed by its keys' class counts (``PromptParams.balance``, attention alone's).

    Exact attention (every key pixel, or a class-proportional sample of :data:`~.filters.SAMPLE_PIXELS` of
    them), whatever ``PromptParams.attention`` says: k-means prototypes for the 16 key sets of a self-check
    would cost seconds, and the prototypes approximate exact attention (tests/test_segment.py: the two agree
    on ≥ 97 % of pixels).
    """
    emb = box.emb if emb is None else emb
    queries = emb if queries is None else queries
    out = np.zeros((len(box.y), box.n_classes), np.float32)
    for q in np.unique(box.quad):
        train = box.train_mask(q) & ~np.isin(box.quad, exclude) & box.keyed
        held = (box.quad == q) & (True if rows is None else rows)
        if q in exclude or not train.any() or not held.any():
            continue
        train = np.flatnonzero(train)
        train = train[pixel_sample(box.y[train])]
        keys = attention.exact_keys(emb[train], box.y[train])
        with torch.inference_mode():
            p = attention.rebalance(attention.attend(queries[held].float(), keys, box.tau),
                                    attention.key_counts(keys), balance)
        out[np.ix_(held, keys.classes)] = p.float().cpu().numpy()
    return out


# ----------------------------------------------------------------------------- forest and fuse
def forest_check(box: BoxData, feats: np.ndarray, loqo: np.ndarray | None,
                 trees: int, extra: np.ndarray | None = None) -> Generator[Progress, None, np.ndarray]:
    """Held-out predictions of a forest path: each quadrant by a forest fitted on the other three. With
    ``loqo`` (the fused path) the attention feature is itself out-of-sample (nested: keys from the two
    quadrants left); without it (the forest path) the forest sees the filters only."""
    pred = np.zeros(len(box.y), np.int64)
    quads = np.unique(box.quad[box.fair])  # the groups the check scores
    for i, q in enumerate(quads):
        # the forest's pixels are sampled here, so that the nested attention runs on them alone
        taught = np.flatnonzero(box.train_mask(q) & box.taught)
        train, test = np.zeros(len(box.y), bool), box.quad == q
        train[taught[pixel_sample(box.y[taught])]] = True
        if loqo is None:
            x_train, x_test = feats[train], feats[test]
        else:
            nested = held_out_probs(box, exclude=(q,), rows=train)
            x_train, x_test = np.hstack([feats[train], nested[train]]), np.hstack([feats[test], loqo[test]])
            if extra is not None:  # the network's own per-pixel features (PromptParams.fuse_embedding)
                x_train, x_test = np.hstack([x_train, extra[train]]), np.hstack([x_test, extra[test]])
        forest = fit_forest(trees, x_train, box.y[train], int(train.sum()))  # sampled already: every pixel
        pred[test] = forest_proba(forest, x_test, box.n_classes).argmax(1)
        yield Progress(i + 1, len(quads), "checking the forest" if loqo is None else "checking the fused path")
    return pred


# ----------------------------------------------------------------------------- finetune
def view_loss(net: EmbedNet, region: np.ndarray, packed: np.ndarray, n_classes: int, tau: float,
              rng: np.random.Generator, device) -> torch.Tensor | None:
    """Cross entropy of the attention output on one augmented view of the prompt region: queries = the
    pixels of one labelled quadrant, keys = those of the other labelled quadrants (never the query pixels
    themselves, so the network learns to generalise across the box, not to match a pixel with itself).
    ``packed`` = class·4 + quadrant (−1: not labelled)."""
    img, lab = augment(region, packed, rng, MILD)
    lab = lab.reshape(-1)
    quads = np.unique(lab[lab >= 0] % 4)
    if len(quads) < 2:
        return None
    q = rng.choice(quads)
    qi = np.flatnonzero((lab >= 0) & (lab % 4 == q))
    ki = np.flatnonzero((lab >= 0) & (lab % 4 != q))
    qi = rng.choice(qi, min(len(qi), TUNE_PIXELS), replace=False)
    ki = rng.choice(ki, min(len(ki), TUNE_PIXELS), replace=False)
    emb = net.any_size(torch.from_numpy(img)[None].to(device))[0].flatten(1).T
    x, k = emb[torch.from_numpy(qi).to(device)], emb[torch.from_numpy(ki).to(device)]
    v = F.one_hot(torch.from_numpy(lab[ki] // 4).to(device), n_classes).float()
    o = torch.softmax(x @ k.T / tau, dim=1) @ v
    return F.nll_loss(torch.log(o.clamp_min(1e-6)), torch.from_numpy(lab[qi] // 4).to(device))


def tune_regions(box: BoxData, held_out: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fine-tuning views' sources: per part, its rectangle + TUNE_CONTEXT and the packed labels (class·4 +
    quadrant of the rectangle, −1 unlabelled or in the held-out group); a part with one quadrant labelled is left
    out (a view needs queries and keys from different quadrants)."""
    out = []
    for src, span in zip(box.sources, box.spans):
        (oy, ox), (h, w) = src.offset, src.shape
        y0, x0 = max(0, oy - TUNE_CONTEXT), max(0, ox - TUNE_CONTEXT)
        y1, x1 = min(src.region.shape[1], oy + h + TUNE_CONTEXT), min(src.region.shape[2], ox + w + TUNE_CONTEXT)
        values = box.y[span].astype(np.int64) * 4 + src.quadrants()
        if held_out is not None:
            values = np.where(box.quad[span] == held_out, -1, values)
        if len(np.unique(values[values >= 0] % 4)) < 2:
            continue
        packed = np.full(src.region.shape[1:], -1, np.int64)
        packed[src.box] = src.put(values, -1)
        out.append((np.ascontiguousarray(src.region[:, y0:y1, x0:x1]), packed[y0:y1, x0:x1]))
    return out


def finetune(model: EmbedNet, box: BoxData, params, held_out: int | None = None,
             seed: int = 0) -> Generator[Progress, None, EmbedNet]:
    """A deep copy of ``model`` fine-tuned on the prompt region (the shared model is never touched).

    Runs ``params.finetune_steps`` Adam steps, or fewer if ``params.finetune_seconds`` (None: no cap) have
    passed first; ``held_out`` is a quadrant left unlabelled (the self-check).
    """
    device = next(model.parameters()).device
    net = copy.deepcopy(model).eval()  # eval: BatchNorm keeps its running statistics
    for p in net.parameters():
        p.requires_grad_(True)
    opt = Adam(net.parameters(), lr=params.finetune_lr)
    views = tune_regions(box, held_out)
    rng = np.random.default_rng(seed)
    t0, steps = time.perf_counter(), params.finetune_steps
    for step in range(steps):
        if params.finetune_seconds is not None and time.perf_counter() - t0 > params.finetune_seconds:
            break
        if not views:
            break
        region, packed = views[0] if len(views) == 1 else views[rng.integers(len(views))]
        with torch.inference_mode(False), torch.enable_grad():
            loss = view_loss(net, region, packed, box.n_classes, box.tau, rng, device)
            if loss is not None:
                loss.backward()
                opt.step()
        yield Progress(step + 1, steps, "fine-tuning the network")
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@torch.inference_mode()
def box_embeddings(net: EmbedNet, source: PromptSource | list[PromptSource]) -> torch.Tensor:
    """(M, D) CPU embeddings of the labelled pixels of the part(s) by ``net``, each seen with its context."""
    device = next(net.parameters()).device
    out = []
    for s in as_sources(source):
        emb = net.any_size(torch.from_numpy(s.region)[None].to(device))[(0, slice(None), *s.box)]
        out.append(torch.from_numpy(s.take(emb.permute(1, 2, 0).float().cpu().numpy())))
    return torch.cat(out)


def balanced_quadrant(box: BoxData) -> int:
    """The quadrant whose second most frequent class is the largest share of it (the most informative)."""
    def share(q):
        counts = np.sort(np.bincount(box.y[box.quad == q], minlength=2))[::-1]
        return counts[1] / max(1, counts.sum())

    return int(max(box.held_groups, key=share))


def finetune_check(model: EmbedNet, box: BoxData, params, loqo: np.ndarray,
                   none_score: float) -> Generator[Progress, None, float]:
    """Paired estimate of the fine-tuned path on ONE held-out quadrant (see the module docstring)."""
    h = balanced_quadrant(box)
    net = yield from finetune(model, box, params, held_out=h)
    probs = held_out_probs(box, box_embeddings(net, box.sources))
    test = box.quad == h
    tuned, plain = (mean_dice(p[test].argmax(1), box.y[test]) for p in (probs, loqo))
    if tuned is None or plain is None:  # a one-class quadrant: Dice of that class alone
        tuned, plain = (float(np.mean(p[test].argmax(1) == box.y[test])) for p in (probs, loqo))
    return float(np.clip(none_score + tuned - plain, 0.0, 1.0))


# ----------------------------------------------------------------------------- the check and the choice
def self_check(model: EmbedNet, box: BoxData, params, paths,
               known: dict | None = None) -> Generator[Progress, None, tuple[dict, dict]]:
    """{path: estimated Dice in [0, 1]} for ``paths`` (and "none", which the others build on; ``{}`` when no part of
    the prompt can be scored: :attr:`BoxData.fair`): the held-out Dice less :data:`CHECK_BIAS`. Plus what the final
    fit reuses (held-out attention probabilities, the box's filters). ``known``: the estimates of the same boxes
    made before (the check read the boxes alone: ``BoxData.check_strokes`` False), returned as they are."""
    yield Progress(0, 0, "checking the prompt")  # before the held-out attention: the check's first seconds
    # attention's plain held-out probabilities: the fused and fine-tuned paths build on them, and attention alone is
    # them unless its classes are weighed (then they are not computed for a check of attention alone: a sparse box)
    loqo = held_out_probs(box) if not params.balance or {"fuse", "finetune"} & set(paths) else None
    reuse = {"loqo": loqo, "extra": box.emb.float().numpy() if params.fuse_embedding else None}
    if "fuse" in paths or "forest" in paths:
        reuse["feats"] = box_features(box.sources)
    if known is not None:
        return dict(known), reuse
    alone = held_out_probs(box, balance=params.balance) if params.balance else loqo  # attention alone's classes weighed
    check = {"none": box.score(alone.argmax(1))}
    if check["none"] is None:  # no part the check can score (BoxData.fair): no estimate, for any path
        return {}, reuse
    for path in ("forest", "fuse"):
        if path in paths:
            fused = path == "fuse"
            pred = yield from forest_check(box, reuse["feats"], loqo if fused else None, params.check_trees,
                                           reuse["extra"] if fused else None)
            check[path] = box.score(pred)
    if "finetune" in paths:
        check["finetune"] = yield from finetune_check(model, box, params, loqo, check["none"])
    return {path: max(0.0, dice - CHECK_BIAS) for path, dice in check.items()}, reuse


def choose(check: dict, handicap: dict | None = None) -> str:
    """The path with the best estimate less its handicap (default :data:`HANDICAP`); within :data:`TIE` of the best,
    the cheapest; :data:`UNCHECKED` when there is no estimate."""
    if not check:
        return UNCHECKED
    handicap = HANDICAP if handicap is None else handicap
    score = {p: v - handicap.get(p, 0.0) for p, v in check.items()}
    best = max(score.values())
    return next(p for p in PATHS if p in score and score[p] >= best - TIE)


def adapt_iter(model: EmbedNet, box: BoxData | None, params,
               known: dict | None = None) -> Generator[Progress, None, Adaptation]:
    """Check the paths ``params.adapt`` asks for (``known``: their estimates, made before on the same boxes) and fit
    the chosen one, once per prompt."""
    if params.adapt == "none":
        return Adaptation("none", {})
    if box is None:
        if params.adapt == "auto":  # a prompt of boxes of several images (prompt_from_boxes): attention
            return Adaptation("none", {})
        raise FewcellError(f"Adapting with '{params.adapt}' needs a prompt made by prepare_prompt or "
                           "prepare_prompt_boxes (boxes of one image).")
    sparse = params.adapt == "auto" and params.sparse_balance and sparse_share(box.y[box.scored]) < SPARSE
    box = box.sampled()  # the check and the fit read a sample of a big part (annotated.PART_PIXELS)
    if sparse:
        return (yield from sparse_adaptation(model, box, params, known))
    paths = AUTO_PATHS if params.adapt == "auto" else ("none", params.adapt)
    check, reuse = yield from self_check(model, box, params, paths, known)
    path = choose(check) if params.adapt == "auto" else params.adapt
    fitted = yield from fit_path(model, box, params, path, reuse)
    return Adaptation(path, check, unchecked=not check, **fitted)


def sparse_adaptation(model: EmbedNet, box: BoxData, params,
                      known: dict | None) -> Generator[Progress, None, Adaptation]:
    """Auto's path for a box with a sparse class: attention alone, its classes weighed by PromptParams.sparse_balance,
    with that attention's estimate; the forests' checks are not made (their result could not change the path). The
    share is the boxes' pixels' (a correction stroke never switches the path)."""
    balanced = dataclasses.replace(params, balance=params.sparse_balance)
    check, _ = yield from self_check(model, box, balanced, ("none",), known)
    return Adaptation("none", check, unchecked=not check, balance=params.sparse_balance)


def fit_path(model: EmbedNet, box: BoxData, params, path: str, reuse: dict) -> Generator[Progress, None, dict]:
    """What the chosen path needs at inference (:class:`Adaptation`'s fields), fitted on the prompt's pixels (the
    check's filters and held-out attention reused)."""
    if path in ("fuse", "forest"):
        yield Progress(0, 0, "fitting the forest")
        x = np.hstack([reuse["feats"], reuse["loqo"]]) if path == "fuse" else reuse["feats"]
        embedding = path == "fuse" and reuse["extra"] is not None
        x = np.hstack([x, reuse["extra"]]) if embedding else x
        forest = fit_forest(params.trees, x[box.taught], box.y[box.taught], FIT_PIXELS)
        counts = np.bincount(box.y[box.taught], minlength=box.n_classes)  # the shares of the forest's sample
        return {"forest": forest, "embedding": embedding, "counts": counts}
    if path == "finetune":
        return {"model": (yield from finetune(model, box, params))}
    return {}
