"""``fewcell pretrain`` (the episodic embedding network) and ``fewcell train-extractor`` (one MSD feature
extractor): the training verbs behind the shipped weights."""
from __future__ import annotations

import shlex
import sys

from .args import add_data, add_out, add_run_options, add_seed, add_threads
from .bar import Bar
from .inputs import check_model_target


def add_pretrain_parser(sub) -> None:
    from ..engine.training.datasets import ALL_SETS
    from ..engine.training.params import STRATEGIES, PretrainParams

    d = PretrainParams
    p = sub.add_parser("pretrain", help="pre-train the embedding network (writes a weights file; resumable)",
                       description=cmd_pretrain.__doc__)
    add_data(p, "../shared/data")
    p.add_argument(
        "--datasets", nargs="+", default=list(ALL_SETS), metavar="NAME[=WEIGHT]",
        help="tasks to train on: SET (every label folder of it) or SET:FOLDER (e.g. tem_myelinated_axons:"
             "labels_myelin), each optionally with its sampling weight (default: equal per task)",
    )
    p.add_argument("--exclude", nargs="+", default=[], metavar="NAME",
                   help="leave out a whole SET (leave-one-data-set-out) or one SET:FOLDER (a class-out fold)")
    p.add_argument("--strategy", choices=STRATEGIES, default=d.strategy,
                   help="episodic (paper 000), reptile (paper 003) or moco (paper 004: MoCo alternated with episodes)")
    p.add_argument("--dice-weight", type=float, default=0.0, help="weight of a soft-Dice term added to the loss")
    p.add_argument("--invert-p", type=float, default=d.invert_p, help="probability of inverting an episode's images")
    p.add_argument("--swap-p", type=float, default=d.swap_p,
                   help="probability of swapping foreground and background in an episode")
    p.add_argument("--init", default=None, metavar="WEIGHTS.pt", help="start from these weights (warm start)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimiser steps (reptile: meta-iterations)")
    p.add_argument("--cpu-minutes", type=float, default=d.cpu_minutes,
                   help="stop when training has used this much CPU time (all threads, over resumes); --steps is "
                        "then an upper bound. For comparing strategies at an equal CPU budget (0 = no budget)")
    add_scale_options(p, d)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop, help="query crop edge")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--inner-steps", type=int, default=d.inner_steps, help="reptile: Adam steps per task")
    p.add_argument("--meta-step", type=float, default=d.meta_step, help="reptile: ε of the meta-update")
    p.add_argument("--shots", type=int, default=d.shots, help="reptile: K images per task")
    p.add_argument("--entropy-weight", type=float, default=d.entropy_weight,
                   help="reptile: α of the entropy regularisation on another data set's unlabelled images")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="reptile: β of the distillation between two data sets' bottleneck features")
    p.add_argument("--moco-every", type=int, default=d.moco_every, help="moco: one MoCo step every N steps")
    p.add_argument("--moco-queue", type=int, default=d.moco_queue, help="moco: negatives kept in the queue")
    p.add_argument("--moco-momentum", type=float, default=d.moco_momentum, help="moco: key-encoder momentum")
    p.add_argument("--moco-tau", type=float, default=d.moco_tau, help="moco: InfoNCE temperature")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue the run saved in this checkpoint")
    p.add_argument("--checkpoint", default=None, metavar="CKPT",
                   help="where to keep the run's checkpoint (default: WEIGHTS.pt.ckpt)")
    p.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes,
                   help="write a checkpoint at least this often")
    add_seed(p)
    add_threads(p)
    add_out(p, "WEIGHTS.pt")
    p.set_defaults(func=cmd_pretrain)


def add_scale_options(p, d) -> None:
    """``fewcell pretrain``'s options for training at scale: a time budget, the device, the batch sampler."""
    p.add_argument("--wall-minutes", type=float, default=d.wall_minutes,
                   help="stop after this much wall time (over resumes); the learning rate warms up and decays "
                        "(cosine) over the larger of --steps and this time, so a fixed-time run ends at a low rate "
                        "on any machine (0 = no budget: one-cycle over --steps)")
    p.add_argument("--device", default=d.device, choices=["cpu", "cuda", "auto"],
                   help="where the network trains (episodic; a GPU machine: cuda)")
    p.add_argument("--sampler", default=d.sampler, choices=["numpy", "torch"],
                   help="episodic: cut and augment episodes one by one with numpy, or in batch with torch on --device")
    p.add_argument("--scale", type=float, nargs=2, default=list(d.scale), metavar=("LOW", "HIGH"),
                   help="--sampler torch: rescale each episode by a factor drawn log-uniformly in [LOW, HIGH]")
    p.add_argument("--query-pixels", type=int, default=d.query_pixels, help="query pixels scored per episode")
    p.add_argument("--key-pixels", type=int, default=d.key_pixels, help="prompt pixels attended to per episode")
    p.add_argument("--bf16", action="store_true", default=d.bf16,
                   help="episodic: the network's forward pass in bfloat16 (faster on a GPU; the loss stays float32)")


def add_bank_parser(sub) -> None:
    from ..engine.training.datasets import ALL_SETS

    b = sub.add_parser("pretrain-bank", help="pack the data sets' train splits into one compact crop bank (.npz)",
                       description=cmd_bank.__doc__)
    add_data(b, "../shared/data")
    b.add_argument("--sets", nargs="+", default=list(ALL_SETS), metavar="SET", help="data sets to pack")
    b.add_argument("--window", type=int, default=512, help="largest window kept of an image (px)")
    b.add_argument("--budget-mpx", type=float, default=4.5, help="megapixels per set, about")
    add_seed(b)
    add_out(b, "BANK.npz")
    b.set_defaults(func=cmd_bank)


def cmd_bank(a) -> int:
    """Pack the train splits of the labelled data sets (every label folder) into one .npz crop bank: whole images
    up to --window², seeded windows of larger ones up to about --budget-mpx per set, uint8, compressed. Pre-train
    from it anywhere with fewcell pretrain --data BANK.npz (a GPU machine carries it with the tree)."""
    from pathlib import Path

    from ..engine.core.errors import FewcellError
    from ..engine.training.bank import build_bank

    if not a.out.endswith(".npz"):
        raise FewcellError(f"A crop bank is a .npz file; name --out like bank.npz, not {a.out}.")
    if a.window < 64 or a.budget_mpx <= 0:
        raise FewcellError("--window must be 64 px or more and --budget-mpx a positive number.")
    meta = build_bank(a.data, a.out, a.sets, a.window, a.budget_mpx, a.seed)
    n = sum(len(s["ids"]) for s in meta["sets"].values())
    print(f"{a.out}: {n} windows of {len(meta['sets'])} sets, {Path(a.out).stat().st_size / 2**20:.1f} MiB",
          file=sys.stderr)
    return 0


def add_train_extractor_parser(sub) -> None:
    from ..engine.training.params import MSDTrainParams as MSDDefaults

    t = sub.add_parser("train-extractor", help="train one binary MSD feature extractor for workflow 3 (paper 002)",
                       description=cmd_train_extractor.__doc__)
    add_data(t, MSDDefaults.data)
    t.add_argument("--dataset", required=True, help="data set folder name, e.g. isbi2012_membrane")
    t.add_argument("--name", required=True, help="the extractor's name, e.g. em_membrane")
    add_out(t, "msd_NAME.pt")
    t.add_argument("--depth", type=int, default=MSDDefaults.depth, help="MSD layers")
    t.add_argument("--crop", type=int, default=MSDDefaults.crop)
    t.add_argument("--batch", type=int, default=MSDDefaults.batch)
    t.add_argument("--lr", type=float, default=MSDDefaults.lr)
    t.add_argument("--bce-weight", type=float, default=MSDDefaults.bce_weight,
                   help="add this weight × binary cross entropy to the Dice loss")
    t.add_argument("--steps-per-epoch", type=int, default=MSDDefaults.steps_per_epoch)
    t.add_argument("--max-epochs", type=int, default=MSDDefaults.max_epochs)
    t.add_argument("--patience", type=int, default=MSDDefaults.patience)
    t.add_argument("--max-minutes", type=float, default=MSDDefaults.max_minutes)
    add_run_options(t, cmd_train_extractor, None, device=False)


def cmd_pretrain(a) -> int:
    """Pre-train the embedding network of prompt segmentation on the train splits of labelled data sets, by
    episodes (paper 000), Reptile meta-learning (paper 003) or MoCo alternated with episodes (paper 004). A
    checkpoint is written at least every --checkpoint-minutes; --resume CKPT continues a run from it.
    """
    from ..engine.core.errors import Cancelled
    from ..engine.core.files import check_file_target
    from ..engine.core.progress import run
    from ..engine.training.params import PretrainParams
    from ..engine.training.pretrain import checkpoint_path, pretrain_iter

    names, weights = dataset_weights(a.datasets)
    given = any(w is not None for w in weights)
    chosen = tuple(1.0 if w is None else w for w in weights) if given else None  # a weight of 0 stays 0
    p = PretrainParams(
        data=a.data, datasets=tuple(names), dataset_weights=chosen,
        exclude=tuple(a.exclude), strategy=a.strategy, steps=a.steps, batch=a.batch, crop=a.crop, seed=a.seed,
        threads=a.threads, lr=a.lr, dice_weight=a.dice_weight, invert_p=a.invert_p, swap_p=a.swap_p, init=a.init,
        inner_steps=a.inner_steps, meta_step=a.meta_step, shots=a.shots, entropy_weight=a.entropy_weight,
        distill_weight=a.distill_weight, moco_every=a.moco_every, moco_queue=a.moco_queue,
        moco_momentum=a.moco_momentum, moco_tau=a.moco_tau,
        checkpoint_minutes=a.checkpoint_minutes, cpu_minutes=a.cpu_minutes, wall_minutes=a.wall_minutes,
        device=a.device, sampler=a.sampler, scale=tuple(a.scale), query_pixels=a.query_pixels,
        key_pixels=a.key_pixels, bf16=a.bf16,
    )
    check_file_target(a.out, None)  # before the data is read and any step runs
    ckpt = a.checkpoint or str(checkpoint_path(a.out))
    stop = stop_on_signals()
    try:
        run(pretrain_iter(p, a.out, resume=a.resume, checkpoint=ckpt), Bar("pretrain"), cancelled=stop.is_set)
    except Cancelled:
        print(f"\nfewcell: stopped; {ckpt} holds the last finished step: continue with the same command and "
              f"--resume {ckpt}", file=sys.stderr)
        return 130
    print(a.out)
    return 0


def dataset_weights(items) -> tuple[list[str], list[float | None]]:
    """``--datasets NAME[=WEIGHT] …`` as names and weights (None where none is given)."""
    import math

    from ..engine.core.errors import FewcellError

    names, weights = [], []
    for item in items:
        name, _, weight = item.partition("=")
        try:
            value = float(weight) if weight else None
        except ValueError:
            value = math.nan
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise FewcellError(f"The weight of {name} in --datasets {item} is not a number of 0 or more; write "
                               "NAME=WEIGHT, e.g. isbi2012_membrane=2.")
        names.append(name)
        weights.append(value)
    return names, weights


def stop_on_signals():
    """An event set by SIGTERM or SIGINT (a session's end, Ctrl-C): the run stops between two steps."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_train_extractor(a) -> int:
    """Train a mixed-scale dense network on the train split of one data set (80/20 train/validation by image, Dice
    loss, Adam, early stopping on validation Dice).
    """
    from ..engine.core.progress import run
    from ..engine.nets.msd import save_msd
    from ..engine.training.msd_train import train_msd_iter
    from ..engine.training.params import MSDTrainParams

    check_model_target(a.out, a.overwrite)
    p = MSDTrainParams(data=a.data, dataset=a.dataset, depth=a.depth, crop=a.crop, batch=a.batch, lr=a.lr,
                       bce_weight=a.bce_weight,
                       steps_per_epoch=a.steps_per_epoch, max_epochs=a.max_epochs, patience=a.patience,
                       max_minutes=a.max_minutes, seed=a.seed, threads=a.threads)
    net, card = run(train_msd_iter(p), Bar(f"extractor {a.name}"))
    card["command"] = "fewcell " + shlex.join(a.argv)
    save_msd(net, a.out, a.name, card)
    print(f"{a.out}: best validation Dice {card['best_val_dice']} at epoch {card['best_epoch']}", file=sys.stderr)
    print(a.out)
    return 0
