"""``fewcell pretrain`` (the episodic embedding network) and ``fewcell train-extractor`` (one MSD feature
extractor): the training verbs behind the shipped weights."""
from __future__ import annotations

import shlex
import sys

from .args import add_data, add_out, add_run_options, add_seed, add_threads
from .bar import Bar
from .inputs import check_model_target


def add_pretrain_parser(sub) -> None:
    from ..engine.training.episodic import DATASETS

    p = sub.add_parser("pretrain", help="train the embedding network episodically (writes a weights file)")
    add_data(p, "../shared/data")
    p.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), metavar="NAME[=WEIGHT]",
        help="data sets to train on, each optionally with its sampling weight",
    )
    p.add_argument("--dice-weight", type=float, default=0.0, help="weight of a soft-Dice term added to the loss")
    p.add_argument("--invert-p", type=float, default=0.2, help="probability of inverting an episode's images")
    p.add_argument("--init", default=None, metavar="WEIGHTS.pt", help="start from these weights (warm start)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
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
    from ..engine.core.progress import run
    from ..engine.training.episodic import DATASETS, PretrainParams, pretrain_iter

    names, weights = [], []
    for item in a.datasets:
        name, _, weight = item.partition("=")
        names.append(name)
        weights.append(float(weight) if weight else DATASETS.get(name, 1.0))
    p = PretrainParams(
        data=a.data, datasets=tuple(names), dataset_weights=tuple(weights), steps=a.steps, batch=a.batch,
        seed=a.seed, threads=a.threads, lr=a.lr, dice_weight=a.dice_weight, invert_p=a.invert_p, init=a.init,
    )
    run(pretrain_iter(p, a.out), Bar("pretrain"))
    print(a.out)
    return 0


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
