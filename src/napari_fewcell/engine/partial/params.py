"""The parameters of workflow 2, each with its default, shared by the widget, the CLI and the API: stage 1
(:class:`PseudoParams`: fine-tuning and labelling the images) and stage 2 (:class:`TrainParams`: the network trained
on the pseudo-labels)."""
from __future__ import annotations

import dataclasses
import math

from ..core.errors import FewcellError
from ..core.options import DEVICES, PRECISIONS, check_numbers, check_precision, check_seed, option
from ..prompt.params import ADAPT_CHOICES


@dataclasses.dataclass
class PseudoParams:
    """Parameters of stage 1, shared by the widget, the CLI and the API."""

    epochs: int = option(15, "Epochs", "Fine-tuning epochs (0: label by attention with the pre-trained network only).",
                         min=0, max=10_000)
    steps_per_epoch: int = option(0, "Steps per epoch (0: auto)", "Optimiser steps per epoch; 0: enough crops to cover "
                                  "the unannotated pixels once.", min=0, max=1_000_000)
    batch: int = 4  #: query crops per step
    crop: int = 128  #: query crop edge
    lr: float = 3e-4
    prompt_weight: float = 1.0  #: weight of Loss_prompt (Eq. 4 uses 1)
    dice_weight: float = 0.0  #: weight of a soft-Dice term added to both losses (counters the majority class)
    query_pixels: int = 4096  #: query pixels scored per crop (random subset, for speed)
    key_pixels: int = 1024  #: prompt pixels attended to per step (random subset, for speed)
    context: int = 32  #: context pixels around a prompt box
    tau: float | None = None  #: attention temperature; None = the weights' own
    weights: str | None = None  #: pre-trained embedding weights; None = shipped
    prototypes: int = 64  #: prototypes per class when labelling the images
    #: with ≥3 boxes, keep the epoch (0 = the pre-trained network) whose held-out box Dice is best
    keep_best: bool = True
    #: with held-out boxes, stop after this many epochs without a better held-out box Dice (0 = run every epoch).
    #: The epochs run are a prefix of a longer run's: on the LODO folds' histories 2 keeps the same epoch as 4 on ISBI
    #: and TEM axons, and epoch 6 (held-out 0.919) instead of 9 (0.923) on usiigaci, two epochs sooner
    patience: int = 2
    #: how the images are labelled from all the boxes with the kept network: the one-shot default (PromptParams's
    #: "auto": attention, or attention and filters in a forest, by the self-check over the boxes), or a path
    adapt: str = "auto"
    device: str = option("auto", "Device", "Where the networks run.", DEVICES)
    seed: int = 0

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        if self.epochs < 0 or self.steps_per_epoch < 0 or self.patience < 0:
            raise FewcellError("The number of epochs, of steps per epoch and the patience cannot be negative.")
        if self.batch < 1 or self.crop < 16:
            raise FewcellError("The batch must hold at least one crop and crops must be at least 16 pixels.")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # one too high is caught as the loss diverges
            raise FewcellError(f"The learning rate must be a positive number, not {self.lr}.")
        if self.context < 0 or self.query_pixels < 1 or self.key_pixels < 1 or self.prototypes < 1:
            raise FewcellError("The prompt's context must be 0 or more pixels, and the query pixels, key pixels and "
                               "prototypes 1 or more.")
        if self.prompt_weight < 0 or self.dice_weight < 0:
            raise FewcellError("The weights of the prompt loss and of the Dice term must be 0 or more.")
        if self.adapt not in ADAPT_CHOICES:
            raise FewcellError(f"Unknown adaptation '{self.adapt}': choose one of {', '.join(ADAPT_CHOICES)}.")


INITS = ("scratch", "pretrained")  #: values of ``TrainParams.init``


@dataclasses.dataclass
class TrainParams:
    """Stage-2 training parameters, shared by the widget, the CLI and the API."""

    #: optimiser steps. 500 from the embedding weights matched or beat 1500 from scratch in a third of the time: ISBI
    #: with the shipped weights 87.26 against 86.80, and with weights that never saw ISBI 83.46 against 83.17
    #: (benchmarks/studies/study_stage2.py; docs/benchmarks/). From scratch, give it 1500 (paper 000's recipe)
    steps: int = option(500, "Training steps", "Optimiser steps of the network trained on the pseudo-labels.", min=1,
                        max=1_000_000)
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3  #: peak learning rate (one-cycle schedule)
    base: int = 16  #: channels of the first U-Net level (init "scratch"; "pretrained" takes the embedding network's)
    depth: int = 3  #: U-Net levels (init "scratch"; "pretrained" takes the embedding network's)
    dice_weight: float = 1.0  #: weight of the soft-Dice term added to the cross entropy
    tta: bool = False  #: average the 8 flips/rotations at prediction (8× slower; +0.07 Dice % on the ISBI LODO fold)
    #: "pretrained": the U-Net's body starts from the embedding network's weights (``weights``, or the shipped ones),
    #: only the class head is new; or "scratch": a new U-Net (paper 000)
    init: str = option("pretrained", "Network starts from", "pretrained: the network's body starts from the embedding "
                       "network, only the class head is new; scratch: a new U-Net (paper 000), which needs ~1500 steps",
                       INITS)
    weights: str | None = None  #: "pretrained": the embedding weights file (None: the shipped weights)
    #: with stage 1's confidence (``train_iter(confidence=...)``), pixels labelled with a lower probability are left
    #: out of the loss (annotated pixels have confidence 1). 0 = every pixel. On ISBI with weights that never saw it,
    #: over 3 seeds, 0.8 (68 % of the pixels) gave 81.47 and 0.9 80.06 against 82.64 for every pixel: it drops
    #: 56 % of the membrane pixels, 25 % of the rest (benchmarks/results/stage2_conf_seeds_lodo_isbi.md); not default
    min_confidence: float = 0.0
    #: the network kept is the exponential moving average of the weights over the steps with this decay (torch's
    #: swa_utils, BatchNorm statistics averaged too); 0 keeps the last step's weights. 0.99 gave 82.43 against 82.64
    #: (ISBI, weights that never saw it, mean of 3 seeds; benchmarks/results/stage2_ema_lodo_isbi.md): not the default
    ema: float = 0.0
    #: each training crop is also warped by a smooth random displacement (core.augment.elastic) whose lattice
    #: displacements have this standard deviation in pixels; 0 = no warp. Over 3 seeds, 8 px gave ISBI +0.50,
    #: usiigaci +0.48, TEM axons −0.16, DSB H&E −0.74 (weights that never saw them; docs/benchmarks/partial.md)
    deform: float = 0.0
    #: per channel of a colour image (gray stored as RGB is not), each crop's gain is drawn from 1 ± this and its
    #: shift from ± half of it, on top of the jitter of every channel: a stain's variation. 0 = none. Over 3 seeds,
    #: DSB H&E with weights that never saw it: 0.1 gave 91.97 and 0.2 91.74 against 90.83 without (one-shot 89.28);
    #: in-domain (shipped weights) 91.96 against 91.95 (benchmarks/results/stage2_colour_*.md)
    colour_jitter: float = 0.1
    #: self-training: each round after the first trains a new network on the last one's labels of the training images
    #: (the annotated pixels and the user's fixes keep theirs; ``train_iter(keep=...)``); each round takes ``steps``.
    #: Two rounds against one, over 3 seeds on 4 folds whose weights never saw them: ISBI +0.46, usiigaci +0.40, DSB
    #: H&E +0.44, TEM axons +1.44 (bfloat16; docs/benchmarks/partial.md); in-domain (shipped weights, 3 seeds) ISBI
    #: +0.21, DSB fluorescence −0.13 (within their spread). ISBI's 15 images: 4 min 16–27 s in all with bfloat16
    #: (5 min 12 s in float32, on CPUs without native bfloat16)
    rounds: int = option(2, "Training rounds", "Self-training: each round after the first trains a new network on the "
                         "last one's labels of the images (your annotation and fixes kept). Each round takes as long "
                         "as the first.", min=1, max=5)
    #: the forward passes of training: "auto" = bfloat16 autocast where the device computes it natively
    #: (``core.device.native_bf16``), else float32. On this project's AVX512-BF16 CPU a step takes 126 ms instead of 210
    #: (2 cores), with the same test Dice (ISBI LODO, 3 seeds: 82.16 against 82.17; two rounds 82.63 against 82.64).
    #: Stage 1 stays float32: its fine-tuning in bfloat16 saved 5 s on ISBI and cost H&E's pseudo-labels 2.5 (89.17 →
    #: 86.65; benchmarks/results/stage1_precision_lodo_*.md)
    precision: str = option("auto", "Precision", "Training arithmetic: auto uses bfloat16 where this computer "
                            "computes it natively (faster), else float32.", PRECISIONS)
    device: str = option("auto", "Device", "Where the networks run.", DEVICES)
    seed: int = 0

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        check_precision(self.precision)
        if not 1 <= self.rounds <= 5 or self.rounds != int(self.rounds):
            raise FewcellError(f"The training rounds must be a whole number from 1 to 5, not {self.rounds}.")
        if not (0.0 <= self.deform <= 64.0):
            raise FewcellError(f"The elastic deformation must be between 0 and 64 pixels, not {self.deform}.")
        if not 0.0 <= self.colour_jitter <= 0.5:
            raise FewcellError(f"The colour jitter must be between 0 and 0.5, not {self.colour_jitter}.")
        if not 0.0 <= self.ema < 1.0:
            raise FewcellError(f"The weights' moving-average decay must be at least 0 and below 1, not {self.ema}.")
        if self.steps < 1 or self.batch < 1 or self.crop < 16:
            raise FewcellError("Training needs at least one step, one crop per batch and crops of 16 pixels or more.")
        if not (0 < self.lr <= 1):
            raise FewcellError(f"The learning rate must be a positive number up to 1, not {self.lr}.")
        if self.dice_weight < 0:
            raise FewcellError(f"The weight of the Dice term must be 0 or more, not {self.dice_weight}.")
        if not (1 <= self.base <= 256 and 1 <= self.depth and 2 ** (self.depth + 1) <= self.crop):
            raise FewcellError(f"The U-Net needs 1 to 256 channels in its first level and 1 or more levels, at most "
                               f"{max(1, int(math.log2(self.crop)) - 1)} for crops of {self.crop} pixels.")
        if not 0.0 <= self.min_confidence < 1.0:
            raise FewcellError(f"The minimum confidence must be at least 0 and below 1, not {self.min_confidence}.")
        if self.init not in INITS:
            raise FewcellError(f"Unknown start '{self.init}' for the network: choose {' or '.join(INITS)}.")
