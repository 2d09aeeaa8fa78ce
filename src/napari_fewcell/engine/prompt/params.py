"""PromptParams: every parameter of prompt segmentation (workflow 1) with its default, shared by the widget, the
CLI and the API."""
from __future__ import annotations

import dataclasses
import math

from ..core.errors import FewcellError
from ..core.options import DEVICES, check_numbers, option

#: the values of ``PromptParams.adapt``, each with the few words the widget shows beside it
ADAPT_PATHS = {"auto": "best by the self-check", "none": "attention only, fastest",
               "forest": "filters only, no network", "fuse": "attention + filters", "finetune": "a few seconds"}
ADAPT_CHOICES = tuple(ADAPT_PATHS)
STROKE_USES = ("both", "attention", "forest")  #: values of ``PromptParams.stroke_use``
STROKE_REACHES = ("local", "everywhere")  #: values of ``PromptParams.stroke_reach``


@dataclasses.dataclass
class PromptParams:
    """Parameters shared by the widget, the CLI and the API."""

    tau: float | None = None  #: attention temperature; None = the one the weights were trained with
    attention: str = option("prototypes", "Attention", "prototypes: fast (default); exact: every prompt pixel is a "
                            "key (slow on CPU).", (("prototypes", "prototypes (fast)"), ("exact", "exact")))
    prototypes: int = 64  #: k-means prototypes per class in the fast path
    #: attention alone (the path "none" and its self-check) weighs each class's probability by n_c^−balance, n_c
    #: its prompt pixels (nets/attention.rebalance, the same as weighting the keys): 0 = every pixel alike, so a
    #: class of few prompt pixels is outvoted; 1 = every class alike. The fused path reads the plain probability
    balance: float = 0.0
    #: the forests' (paths "fuse" and "forest") class probabilities, each class's weighed by n_c^−forest_balance, n_c
    #: the box pixels of class c they learnt from: a 64×64 box seldom holds its image's class shares, and where the
    #: filters are ambiguous a forest answers with the box's majority class. 0 = the box's shares (a prior)
    forest_balance: float = 0.0
    #: under "auto", when a class covers less than adapt.SPARSE (10 %) of the boxes: attention alone with its classes
    #: weighed by this balance, whatever the self-check says (such a box's shares are no guide to its image's, and its
    #: check holds few pixels of the class); 0 = off. At 1, on the 7 LODO folds' test images, the default path rose
    #: 77.27 -> 79.47 (TEM axons 63.32 -> 73.58, usiigaci +4.3, H&E +0.8; no fold lower) and in-domain DSB
    #: fluorescence 93.29 -> 94.36, ISBI unchanged (studies/study_adabn.py --variant sparse, study_shipped_default.py)
    sparse_balance: float = 1.0
    tile: int = 512  #: tile edge for bounded-memory inference
    margin: int = 32  #: context pixels around each tile
    weights: str | None = None  #: path of a weights file; None = shipped weights
    device: str = option("auto", "Device", "Where the network runs.", DEVICES)
    #: adaptation to the prompt: "none" (attention only), "forest" (filters in a random forest, no network),
    #: "fuse" (attention + filters in a random forest),
    #: "finetune" (a copy of the network fine-tuned on the box) or "auto" (the best by the self-check)
    adapt: str = option("auto", "Adapt to the prompt", "How to adapt to your image: 'fuse' adds intensity, edge and "
                        "texture filters in a random forest, 'forest' is that forest on the filters alone (no network: "
                        "the classic pixel classifier), 'finetune' fine-tunes a copy of the network on the box, 'auto' "
                        "picks the best by a check inside the box (each quarter predicted from the other three); "
                        "'none' is attention only.", tuple((p, f"{p} ({words})") for p, words in ADAPT_PATHS.items()))
    trees: int = 50  #: trees of the "forest" and "fuse" random forests
    #: trees of each of the self-check's forests (one per held-out quadrant or box): they only estimate, so fewer
    #: than the forest that segments; with the same seed they are the first trees of a forest of ``trees``
    check_trees: int = 16
    #: fine-tuning steps (≈ 2 s at ~0.05 s a step on a CPU core); a number of steps, not seconds, so that the
    #: result and the "auto" choice do not depend on the machine's speed ...
    finetune_steps: int = 40
    finetune_seconds: float | None = 6.0  #: ... unless it is very busy: a cap on the time (None: no cap)
    finetune_lr: float = 1e-4  #: Adam learning rate of the fine-tuning
    #: the self-check trains on no pixel this close to the quarter it predicts (a spatial buffer: neighbouring
    #: pixels share objects and filters, which flatters the forests more than attention)
    check_buffer: int = 0
    #: a corrected pixel counts for this many pixels in the attention (a stroke is a few dozen pixels against a
    #: box's thousands, and the user painted it where the result was wrong)
    stroke_weight: float = 1.0
    #: what learns from correction strokes: "both" (the attention's keys and the forests), "attention" (keys only:
    #: the forests learn from the boxes) or "forest" (the forests only: the keys are the boxes' pixels)
    stroke_use: str = "both"
    #: whether the self-check's fits learn from correction strokes too when they predict each held-out part of the
    #: boxes. False: the check reads the boxes alone, so a stroke never changes the estimate or the path "auto" takes
    #: (the chosen path still learns from the strokes). Chosen on train images of the 7 LODO folds
    #: (benchmarks/studies/study_local_strokes.py --check-strokes): with False the corrected image gained +0.36 on
    #: average (+0.27 with True; better on 4 folds, H&E −0.26 against −0.14), and with the stroke learnt everywhere
    #: no fold fell by more than 5.2 (by up to 5.6 with True, where the stroke switched auto's path on 8 of 42 boxes)
    check_strokes: bool = False
    #: where a correction stroke changes the result it corrects (``SegmentRequest.corrected``): "local" (only the
    #: changed labels 8-connected to a stroke, within :data:`~.corrections.REACH` px; the rest stays as it was) or
    #: "everywhere" (the whole new result). Chosen on train images of the 7 LODO folds
    #: (benchmarks/studies/study_local_strokes.py): local, the corrected image +0.4 to +1.1 Dice on 6 folds and −0.09
    #: on one; everywhere, −4.9 to +6.2, and below the one-box result on 4 folds
    stroke_reach: str = "local"
    #: the fused path's forest also reads each pixel's embedding by the network (a feature bank: the network's
    #: knowledge as 32 features instead of one attention probability)
    fuse_embedding: bool = False
    #: read the prompt and every image as its luminance (gray): what the faces choose when a colour prompt meets
    #: a gray image or the reverse (colour_plan; benchmarks/results/colour.md: +8.8 Dice over keeping the colour)
    luminance: bool = False

    def check(self) -> None:
        check_numbers(self)
        if self.attention not in ("prototypes", "exact"):
            raise FewcellError(f"Unknown attention '{self.attention}': choose 'prototypes' or 'exact'.")
        if self.adapt not in ADAPT_CHOICES:
            raise FewcellError(f"Unknown adaptation '{self.adapt}': choose one of {', '.join(ADAPT_CHOICES)}.")
        if self.stroke_reach not in STROKE_REACHES:
            raise FewcellError(f"Unknown reach of strokes '{self.stroke_reach}': choose one of "
                               f"{', '.join(STROKE_REACHES)}.")
        if self.stroke_use not in STROKE_USES:
            raise FewcellError(f"Unknown use of strokes '{self.stroke_use}': choose one of {', '.join(STROKE_USES)}.")
        if not 0 <= self.balance <= 1:
            raise FewcellError(f"The attention's class balance is a number from 0 to 1, not {self.balance}.")
        if not 0 <= self.sparse_balance <= 1:
            raise FewcellError(f"The sparse boxes' class balance is a number from 0 to 1, not {self.sparse_balance}.")
        if not 0 <= self.forest_balance <= 1:
            raise FewcellError(f"The forests' class balance is a number from 0 to 1, not {self.forest_balance}.")
        if self.check_buffer < 0:
            raise FewcellError("The self-check's buffer is a number of pixels, 0 or more.")
        if min(self.trees, self.check_trees) < 1 or self.finetune_steps < 0 or not self.finetune_lr > 0:
            raise FewcellError("The forest needs at least one tree, and fine-tuning a positive learning rate.")
        if self.finetune_seconds is not None and not self.finetune_seconds >= 0:
            raise FewcellError("The fine-tuning time must be zero or more seconds.")
        if self.tau is not None and not (math.isfinite(self.tau) and 1e-6 <= self.tau <= 1e6):
            raise FewcellError(f"The temperature τ must be a positive number, not {self.tau}.")
        if not (math.isfinite(self.stroke_weight) and 1 <= self.stroke_weight <= 1e6):
            raise FewcellError("A correction pixel's weight must be a number from 1 to 1,000,000.")
        if self.prototypes < 1:
            raise FewcellError("The number of prototypes per class must be at least 1.")
        if self.tile < 64:
            raise FewcellError("The tile size must be at least 64 pixels.")
        if not 0 <= self.margin <= self.tile:
            raise FewcellError(f"The tiles' context margin must be from 0 to a tile's {self.tile} pixels, not "
                               f"{self.margin}.")
        if not self.finetune_lr <= 1:
            raise FewcellError(f"The fine-tuning learning rate must be a positive number up to 1, not "
                               f"{self.finetune_lr}.")
