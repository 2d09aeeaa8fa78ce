"""Training parameters, shared by the CLI (`fewcell pretrain`, `fewcell train-extractor`) and the API: pre-training
(every strategy) and an MSD feature extractor."""
from __future__ import annotations

import dataclasses

from ..core.errors import FewcellError
from ..core.options import check_numbers, check_seed, check_threads
from .datasets import ALL_SETS

STRATEGIES = ("episodic", "reptile", "moco")
SAMPLERS = ("numpy", "torch")


@dataclasses.dataclass
class PretrainParams:
    data: str = "../shared/data"
    datasets: tuple[str, ...] = ALL_SETS  #: tasks: ``SET`` (every label folder of it) or ``SET:FOLDER``
    #: sampling weight per name of ``datasets`` (a set's weight is shared by its tasks); None = equal per task
    dataset_weights: tuple[float, ...] | None = None
    exclude: tuple[str, ...] = ()  #: ``SET`` (leave one data set out) or ``SET:FOLDER`` (leave one class out)
    strategy: str = "episodic"  #: episodic (paper 000) | reptile (paper 003) | moco (paper 004, alternated)
    steps: int = 3000  #: optimiser steps (reptile: meta-iterations)
    batch: int = 8
    crop: int = 128  #: query crop edge
    box: int = 64  #: prompt box edge
    context: int = 32  #: prompt context on each side
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  #: torch threads (0 = torch's default)
    base: int = 16
    embed_dim: int = 32
    tau: float = 0.1
    dice_weight: float = 0.0  #: weight of a soft-Dice term (mean over classes) added to the cross entropy
    invert_p: float = 0.2  #: probability of inverting prompt and query together
    #: probability of swapping foreground and background in an episode (prompt and query alike): the prompt
    #: defines the class, whatever the network saw as foreground before
    swap_p: float = 0.0
    init: str | None = None  #: weights file to start from (warm start); None = random init
    query_pixels: int = 4096  #: query pixels scored per episode (random subset, for speed)
    key_pixels: int = 1024  #: prompt pixels attended to per episode (random subset, for speed)
    # reptile (paper 003, Algorithm 1)
    inner_steps: int = 5  #: Adam steps on one task before the meta-update
    meta_step: float = 1.0  #: ε of the meta-update θ ← θ + ε·mean(θ'_m − θ) (paper: 1.0)
    shots: int = 2  #: K images per task
    entropy_weight: float = 0.01  #: α, entropy regularisation on another data set's unlabelled task
    distill_weight: float = 0.01  #: β, distillation between two data sets' bottleneck features
    # moco (paper 004)
    moco_every: int = 2  #: one MoCo step every N steps (the others episodic); 1 = MoCo only
    moco_momentum: float = 0.99
    moco_queue: int = 1024
    moco_tau: float = 0.2
    checkpoint_minutes: float = 10.0  #: a checkpoint at least this often (and at the end)
    #: stop when the training loop has used this much CPU time (all threads, summed over resumes); 0 = no budget.
    #: ``steps`` is then an upper bound: runs of different strategies compared at an equal CPU budget
    cpu_minutes: float = 0.0
    #: stop after this many minutes of wall time (summed over resumes); the learning rate then follows a
    #: warm-up and a cosine decay over the larger of steps and time spent, so a run of a fixed time on any
    #: machine ends at a low rate (0 = no time budget: the one-cycle schedule over ``steps``)
    wall_minutes: float = 0.0
    device: str = "cpu"  #: cpu | cuda | auto: where the network trains
    #: episodic: numpy (one episode at a time on the CPU) or torch (cut and augmented on ``device``, in batch)
    sampler: str = "numpy"
    scale: tuple[float, float] = (1.0, 1.0)  #: torch sampler: episode rescaling factor, drawn log-uniformly
    #: episodic: run the network's forward pass in bfloat16 (autocast on ``device``; the loss stays float32)
    bf16: bool = False

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        check_threads(self.threads)
        if self.strategy not in STRATEGIES:
            raise FewcellError(f"There is no pre-training strategy {self.strategy!r}; choose one of "
                               f"{', '.join(STRATEGIES)}.")
        if self.steps < 1 or self.batch < 1 or self.crop < 16 or self.box < 8:
            raise FewcellError("Pre-training needs one step and one episode or more, crops of 16 px and boxes of 8 px.")
        if self.dataset_weights is not None and len(self.dataset_weights) != len(self.datasets):
            raise FewcellError("Give one weight per data set (NAME=WEIGHT), or none.")
        if self.sampler not in SAMPLERS:
            raise FewcellError(f"There is no episode sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}.")
        if not 0.1 <= self.scale[0] <= self.scale[1] <= 10 or (self.scale != (1.0, 1.0) and self.sampler != "torch"):
            raise FewcellError("--scale takes two factors LOW HIGH between 0.1 and 10 (LOW ≤ HIGH), with "
                               "--sampler torch.")
        if (self.device != "cpu" or self.sampler != "numpy" or self.wall_minutes or self.bf16) \
                and self.strategy != "episodic":
            raise FewcellError("--device, --sampler torch, --bf16 and --wall-minutes are for the episodic strategy; "
                               "drop them or use --strategy episodic.")
        if self.wall_minutes < 0:
            raise FewcellError("A wall-time budget is a number of minutes, 0 for none.")
        if self.cpu_minutes < 0:
            raise FewcellError("A CPU budget is a number of minutes, 0 for none.")
        if self.checkpoint_minutes <= 0:
            raise FewcellError("Checkpoints must be written at least every few minutes (a positive number).")

    def as_card(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class MSDTrainParams:
    """Training one MSD feature extractor (``fewcell train-extractor``; paper 002 §4.3.1)."""

    data: str = "../shared/data"
    dataset: str = "isbi2012_membrane"
    depth: int = 30
    width: int = 1
    max_dilation: int = 10
    crop: int = 96
    batch: int = 8
    lr: float = 1e-3
    bce_weight: float = 0.0  #: weight of a binary cross-entropy term added to the Dice loss (paper: Dice only)
    steps_per_epoch: int = 40
    max_epochs: int = 60
    patience: int = 10  #: epochs without a better validation Dice before stopping (paper: 10)
    max_minutes: float = 30.0  #: wall-time cap (CPU budget); the best state so far is kept
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 0
