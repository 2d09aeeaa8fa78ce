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


def add_train_extractor_parser(sub) -> None:
    from ..engine.training.msd_train import MSDTrainParams as MSDDefaults

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
    from ..engine.core.progress import run
    from ..engine.training.params import PretrainParams
    from ..engine.training.pretrain import checkpoint_path, pretrain_iter

    names, weights = [], []
    for item in a.datasets:
        name, _, weight = item.partition("=")
        names.append(name)
        weights.append(float(weight) if weight else None)
    given = any(w is not None for w in weights)
    chosen = tuple(1.0 if w is None else w for w in weights) if given else None  # a weight of 0 stays 0
    p = PretrainParams(
        data=a.data, datasets=tuple(names), dataset_weights=chosen,
        exclude=tuple(a.exclude), strategy=a.strategy, steps=a.steps, batch=a.batch, crop=a.crop, seed=a.seed,
        threads=a.threads, lr=a.lr, dice_weight=a.dice_weight, invert_p=a.invert_p, swap_p=a.swap_p, init=a.init,
        inner_steps=a.inner_steps, meta_step=a.meta_step, shots=a.shots, entropy_weight=a.entropy_weight,
        distill_weight=a.distill_weight, moco_every=a.moco_every, moco_queue=a.moco_queue,
        moco_momentum=a.moco_momentum, moco_tau=a.moco_tau,
        checkpoint_minutes=a.checkpoint_minutes, cpu_minutes=a.cpu_minutes,
    )
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
    from ..engine.training.msd_train import MSDTrainParams, train_msd_iter

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
