"""The ``fewcell`` command line: same engine and parameters as the widgets and the API."""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

from ..engine.core.errors import FewcellError
from ..engine.core.files import check_out_dir
from .inputs import parse_class_names, read_set, read_support, write_results

EXIT_BAD_INPUT = 2


class _Bar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t0 = time.time()

    def __call__(self, p) -> None:
        frac = p.done / max(1, p.total)
        if not self.tty and p.done not in (0, p.total) and time.time() - self.last < 5:
            return
        self.last = time.time()
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {p.done}/{p.total} {p.message} {time.time() - self.t0:.1f}s"
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        if self.tty and p.done == p.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_segment(a) -> int:
    from ..engine.core.files import read_image, write_labels_tif
    from ..engine.prompt import PromptParams, Segmenter

    params = PromptParams(tau=a.tau, attention=a.attention, prototypes=a.prototypes, weights=a.weights, device=a.device)
    seg = Segmenter(params)
    prompt = seg.prepare_prompt(read_image(a.prompt_image), read_image(a.prompt_labels, "prompt labels"), a.box)
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=[Path(p).stem for p in a.images])  # after the
    # prompt is known to be good, so a bad prompt leaves no empty --out folder behind
    for path in a.images:
        labels = seg.segment(read_image(path), prompt, _Bar(Path(path).name))
        target = out / f"{Path(path).stem}.tif"
        write_labels_tif(target, labels, source=str(path), overwrite=True)
        print(target)
    return 0


def _check_model_target(path: str | None, overwrite: bool) -> None:
    if path is None:
        return
    p = Path(path)
    if p.exists() and not overwrite:
        raise FewcellError(f"{p} already exists; pass --overwrite to replace it or choose another name.")
    if not p.parent.is_dir():
        raise FewcellError(f"The folder {p.parent} for {p.name} does not exist; create it first.")


def _cmd_pseudolabel(a) -> int:
    from ..engine.core.progress import run
    from ..engine.partial import PseudoParams, TrainParams, describe_epoch, pseudolabel_iter, train_iter, validate

    data, layout = read_set(a)
    params = PseudoParams(epochs=a.epochs, steps_per_epoch=a.steps_per_epoch, lr=a.lr, weights=a.weights,
                          device=a.device, seed=a.seed, tau=a.tau)
    params.check()
    validate(data)
    names = parse_class_names(a.class_name)
    _check_model_target(a.train_net, a.overwrite)
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=[Path(p).stem for p, _, _ in layout])
    result = run(pseudolabel_iter(data, params), _Bar("pseudo-labels"))
    for h in result.history:
        print(describe_epoch(h), file=sys.stderr)
    write_results(out, layout, result.labels, "pseudo-labels", names, a.instances)
    if a.train_net:
        tp = TrainParams(steps=a.train_steps, device=a.device, seed=a.seed, tta=a.tta)
        card = {"trained_on": "pseudo-labels from `fewcell pseudolabel`", "images": [str(p) for p in a.images],
                "boxes": [list(map(int, b)) for b in a.box], "stage1": dataclasses.asdict(params),
                "stage1_history": result.history}
        model = run(train_iter([d.image for d in data], result.labels, params=tp, class_names=names, card=card),
                    _Bar("train-net"))
        model.save(a.train_net)
        print(a.train_net)
    return 0


def _cmd_predict(a) -> int:
    from ..engine.core.files import read_image
    from ..engine.core.image import planes_of
    from ..engine.core.progress import run
    from ..engine.models import open_model

    model = open_model(a.model, device=a.device, tta=True if a.tta else None)  # a perceptron or a network
    read = [(path, planes_of(read_image(path), Path(path).name)) for path in a.images]
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=[Path(p).stem for p in a.images])
    results, layout = [], []
    for path, (planes, stack) in read:
        for z, plane in enumerate(planes):
            results.append(run(model.predict_iter(plane), _Bar(f"{Path(path).name}" + (f"[{z}]" if stack else ""))))
        layout.append((path, len(planes), stack))
    write_results(out, layout, results, "prediction", model.class_names, a.instances,
                   extra={"model": str(a.model)})
    return 0


def _cmd_fit(a) -> int:
    from ..engine.core.progress import run
    from ..engine.fewshot import PerceptronParams, fit_iter

    params = PerceptronParams(lam=a.lam, bfgs=not a.no_bfgs, max_pixels=a.max_pixels, device=a.device, seed=a.seed,
                              extractors=tuple(a.extractors) if a.extractors else None)
    params.check()
    names = parse_class_names(a.class_name)
    data = read_support(a)
    _check_model_target(a.out, a.overwrite)
    if Path(a.out).suffix.lower() != ".npz":
        raise FewcellError(f"--out {a.out} should end in .npz (the perceptron is saved as arrays + JSON).")
    model = run(fit_iter(data, params, class_names=names), _Bar("fit"))
    for rec in model.meta["fit"]:
        line = (f"class {rec['class']}: logistic Dice loss {rec['logistic_loss']:.4f}"
                + (f", BFGS {rec['bfgs_loss']:.4f} in {rec['bfgs_iterations']} iterations"
                   if "bfgs_loss" in rec else "")
                + f"; kept {rec['kept']}" + (f" — {rec['note']}" if rec.get("note") else ""))
        print(line, file=sys.stderr)
    print(f"features {model.meta['features_seconds']:.2f} s, fit {model.meta['fit_seconds']:.2f} s "
          f"on {model.meta['pixels_used']} support pixels", file=sys.stderr)
    model.save(a.out)
    print(a.out)
    return 0


def _cmd_suggest(a) -> int:
    import json

    from ..engine import suggest as sg
    from ..engine.core.files import atomic_write, read_image
    from ..engine.core.image import planes_of
    from ..engine.core.progress import run
    from ..engine.models import open_model
    from ..engine.suggest import PretextParams, pretext_iter

    params = sg.SuggestParams(tile=a.tile, top=a.top, score=a.score, scale=a.scale, magnitude=a.magnitude,
                              seed=a.seed, device=a.device)
    params.check()
    if a.pretext and a.model:
        raise FewcellError("--pretext adapts the shipped network to your images before anything is annotated; "
                           "a fitted --model is already adapted, so drop one of the two.")
    out = Path(a.json)
    if out.exists() and not a.overwrite:
        raise FewcellError(f"{out} already exists; pass --overwrite to replace it or choose another name.")
    if not out.parent.is_dir():
        raise FewcellError(f"The folder of --json {out} does not exist; create it first.")
    planes, where = [], []
    for path in a.images:
        pl, stack = planes_of(read_image(path), Path(path).name)
        planes += pl
        where += [(path, z if stack else None) for z in range(len(pl))]
    names = [Path(p).name + ("" if z is None else f" plane {z}") for p, z in where]
    sg.candidates(planes, params.tile, names=names)  # bad tile sizes and mixed images fail before any model loads
    scorer = None
    if params.score != "random":
        if a.model:
            scorer = sg.scorer_for(open_model(a.model, device=a.device))
        else:
            scorer = sg.shipped_network(a.network, planes[0].shape[-1] if planes[0].ndim == 3 else 1, a.device)
            if a.pretext:
                scorer = run(pretext_iter(scorer, planes, PretextParams(steps=a.pretext_steps, seed=a.seed)),
                             _Bar("pretext"))
    hits = run(sg.suggest_iter(planes, scorer, params, names=names), _Bar("suggest"))
    rows = []
    for h in hits:
        path, z = where[h.image]
        row = {"rank": h.rank, "image": path, "box": list(h.box), "score": round(h.score, 6)}
        if z is not None:
            row["plane"] = z
        row["score_name"] = params.score
        row["model"] = a.model if a.model else (f"shipped:{scorer.name}" if scorer is not None else None)
        rows.append(row)
        print(f"{h.rank}. {names[h.image]} box {' '.join(map(str, h.box))} score {h.score:.4f}", file=sys.stderr)
    text = json.dumps(rows, indent=2) + "\n"
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    print(out)
    return 0


def _cmd_pretrain(a) -> int:
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
    run(pretrain_iter(p, a.out), _Bar("pretrain"))
    print(a.out)
    return 0


def _cmd_train_extractor(a) -> int:
    from ..engine.core.progress import run
    from ..engine.nets.msd import save_msd
    from ..engine.training.msd_train import MSDTrainParams, train_msd_iter

    _check_model_target(a.out, a.overwrite)
    p = MSDTrainParams(data=a.data, dataset=a.dataset, depth=a.depth, crop=a.crop, batch=a.batch, lr=a.lr,
                       bce_weight=a.bce_weight,
                       steps_per_epoch=a.steps_per_epoch, max_epochs=a.max_epochs, patience=a.patience,
                       max_minutes=a.max_minutes, seed=a.seed, threads=a.threads)
    net, card = run(train_msd_iter(p), _Bar(f"extractor {a.name}"))
    card["command"] = "fewcell " + shlex.join(a.argv)
    save_msd(net, a.out, a.name, card)
    print(f"{a.out}: best validation Dice {card['best_val_dice']} at epoch {card['best_epoch']}", file=sys.stderr)
    print(a.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..engine.partial import PseudoParams as PseudoDefaults
    from ..engine.partial import TrainParams as TrainDefaults
    from ..engine.training.episodic import DATASETS

    ap = argparse.ArgumentParser(prog="fewcell", description="Segment microscopy images from a tiny annotated prompt.")
    sub = ap.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("segment", help="segment whole images from one labelled prompt box")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="images to segment (TIFF or anything skimage reads)")
    s.add_argument("--prompt-image", required=True, metavar="P.tif", help="image holding the prompt box")
    s.add_argument(
        "--prompt-labels", required=True, metavar="L.tif",
        help="labels: the size of the prompt image (only the box is read) or exactly the box's size",
    )
    s.add_argument("--box", required=True, nargs=4, type=float, metavar=("Y", "X", "H", "W"), help="prompt box")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for <IMAGE stem>.tif label images")
    s.add_argument("--tau", type=float, default=None, help="attention temperature (default: the weights' own, 0.1)")
    s.add_argument("--weights", default=None, metavar="PATH", help="weights file (default: shipped weights)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.add_argument(
        "--attention", default="prototypes", choices=["prototypes", "exact"],
        help="prototypes: fast (default); exact: every prompt pixel is a key (slow on CPU)",
    )
    s.add_argument("--prototypes", type=int, default=64, help="k-means prototypes per class (fast path)")
    s.add_argument("--overwrite", action="store_true", help="replace existing <stem>.tif files in --out")
    s.set_defaults(func=_cmd_segment)

    q = sub.add_parser(
        "pseudolabel",
        help="partial labels (boxes) → pseudo-labels for whole images; optionally train a network on them",
        description="Fine-tune on IMAGEs annotated only inside --box regions (paper 000 §3.3), write "
        "DIR/<IMAGE stem>.tif pseudo-labels for every IMAGE, and with --train-net train a fresh network on them. "
        "Images may differ in size and channel count; a stack (Z×H×W) is a set of planes, and in a labels stack "
        "a plane that is all 0 counts as unannotated.",
    )
    q.add_argument("images", nargs="+", metavar="IMAGE", help="images (TIFF or anything skimage reads) or stacks")
    q.add_argument("--labels", required=True, nargs="+", metavar="L",
                   help="one labels file per IMAGE in order ('none' for an unannotated one), or a folder of files "
                        "named like the images")
    q.add_argument("--box", required=True, nargs=4, type=float, action="append", metavar=("Y", "X", "H", "W"),
                   help="an annotated region in every image that has labels (repeat for several)")
    q.add_argument("--out", required=True, metavar="DIR", help="folder for <IMAGE stem>.tif pseudo-labels")
    q.add_argument("--epochs", type=int, default=PseudoDefaults.epochs,
                   help="stage-1 fine-tuning epochs (0 = no fine-tuning)")
    q.add_argument("--train-net", default=None, metavar="MODEL.pt",
                   help="also train a segmentation network from scratch on the pseudo-labels and save it here "
                        "(+ MODEL.json card)")
    q.add_argument("--train-steps", type=int, default=TrainDefaults.steps, help="stage-2 optimiser steps")
    q.add_argument("--steps-per-epoch", type=int, default=0, help="0 = cover the unannotated pixels once")
    q.add_argument("--lr", type=float, default=PseudoDefaults.lr, help="stage-1 learning rate")
    q.add_argument("--oneshot", action="store_true",
                   help="one-shot fine-tuning: images with labels are fully labelled; --box is their prompt")
    q.add_argument("--instances", choices=["components", "watershed"], default=None,
                   help="write instance labels (one id per object) instead of class labels")
    q.add_argument("--class-name", action="append", metavar="VALUE=NAME", help="class name for the metadata")
    q.add_argument("--tau", type=float, default=None, help="attention temperature (default: the weights' own)")
    q.add_argument("--weights", default=None, metavar="PATH", help="pre-trained embedding weights (default: shipped)")
    q.add_argument("--tta", action="store_true",
                   help="the stage-2 model averages the 8 flips/rotations when predicting (8× slower)")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    q.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    q.set_defaults(func=_cmd_pseudolabel)

    from ..engine.fewshot import PerceptronParams as FitDefaults

    f = sub.add_parser("fit", help="fit a perceptron on MSD feature maps of a few support images (paper 002)",
                       description="Fit a perceptron σ(b + g(x)·W) on the features of the shipped MSD extractors: "
                       "logistic regression, then BFGS on the Dice loss. Labels: value v is class v, 0 background; "
                       "with --box only the boxes are read, else the whole image. Apply it with `fewcell predict`.")
    f.add_argument("--support", required=True, nargs=2, action="append", metavar=("IMAGE", "LABELS"),
                   help="a support image and its labels (repeat for several; stacks give one pair per labelled plane)")
    f.add_argument("--box", nargs=4, type=int, action="append", metavar=("Y", "X", "H", "W"),
                   help="an annotated region in every support image (repeat for several; default: whole images)")
    f.add_argument("--out", required=True, metavar="MODEL.npz")
    f.add_argument("--lam", type=float, default=FitDefaults.lam, help="L2 penalty λ on the weights")
    f.add_argument("--no-bfgs", action="store_true", help="keep the logistic-regression weights (no Dice refinement)")
    f.add_argument("--max-pixels", type=int, default=FitDefaults.max_pixels, help="support pixels used for fitting")
    f.add_argument("--extractors", nargs="+", default=None, metavar="NAME", help="shipped extractors (default: all)")
    f.add_argument("--class-name", action="append", metavar="VALUE=NAME", help="class name for the metadata")
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing MODEL.npz")
    f.set_defaults(func=_cmd_fit)

    r = sub.add_parser("predict", help="apply a saved model (perceptron .npz or network .pt) to images")
    r.add_argument("images", nargs="+", metavar="IMAGE", help="images or stacks")
    r.add_argument("--model", required=True, metavar="MODEL",
                   help="a model saved by napari-fewcell: a perceptron (.npz, `fewcell fit`) or a network (.pt)")
    r.add_argument("--out", required=True, metavar="DIR", help="folder for <IMAGE stem>.tif labels")
    r.add_argument("--instances", choices=["components", "watershed"], default=None,
                   help="write instance labels (one id per object) instead of class labels")
    r.add_argument("--tta", action="store_true", help="average the 8 flips/rotations (8× slower)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    r.add_argument("--overwrite", action="store_true", help="replace existing <stem>.tif files in --out")
    r.set_defaults(func=_cmd_predict)

    from ..engine.suggest import SCORES
    from ..engine.suggest import SuggestParams as SuggestDefaults

    g = sub.add_parser("suggest", help="rank tiles by what a model would learn from them (what to annotate next)",
                       description="Cut the images into square tiles, score each with a model and write the best, "
                       "best first, as JSON: [{\"rank\", \"image\", \"box\": [y, x, h, w], \"score\"}, ...]. "
                       "Without --model the shipped network is scored (paper 001).")
    g.add_argument("images", nargs="+", metavar="IMAGE", help="images or stacks (every plane is a candidate)")
    g.add_argument("--tile", type=int, default=SuggestDefaults.tile, help="tile side in pixels")
    g.add_argument("--top", type=int, default=SuggestDefaults.top, help="how many tiles to suggest")
    g.add_argument("--score", choices=SCORES, default=SuggestDefaults.score)
    g.add_argument("--model", default=None, metavar="MODEL",
                   help="a perceptron (.npz, `fewcell fit`) or stage-2 network (.pt); default: a shipped network")
    g.add_argument("--json", required=True, metavar="OUT.json")
    g.add_argument("--network", default=None, help="shipped network scored without --model (default: fluo_nuclei "
                   "for gray images, he_nuclei for colour; em_membrane for electron microscopy)")
    g.add_argument("--pretext", action="store_true", help="first adapt the shipped network to the images on "
                   "pseudo-labels (histogram equalisation + Otsu threshold + 3×3 dilation; paper 001 §3.2)")
    g.add_argument("--pretext-steps", type=int, default=60)
    g.add_argument("--scale", type=int, default=SuggestDefaults.scale,
                   help="score tiles at 1/SCALE resolution (1 = full resolution, about 8× slower than 2)")
    g.add_argument("--magnitude", type=float, default=SuggestDefaults.magnitude,
                   help="brightness and sharpness factor of the consistency score")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUT.json")
    g.set_defaults(func=_cmd_suggest)

    p = sub.add_parser("pretrain", help="train the embedding network episodically (writes a weights file)")
    p.add_argument("--data", default="../shared/data", help="folder of data sets (see docs/models.md)")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", required=True, metavar="WEIGHTS.pt")
    p.set_defaults(func=_cmd_pretrain)

    from ..engine.training.msd_train import MSDTrainParams as MSDDefaults

    t = sub.add_parser("train-extractor", help="train one binary MSD feature extractor for workflow 3 (paper 002)",
                       description="Train a mixed-scale dense network on the train split of one data set "
                       "(80/20 train/validation by image, Dice loss, Adam, early stopping on validation Dice).")
    t.add_argument("--data", default=MSDDefaults.data, help="folder of data sets (see docs/models.md)")
    t.add_argument("--dataset", required=True, help="data set folder name, e.g. isbi2012_membrane")
    t.add_argument("--name", required=True, help="the extractor's name, e.g. em_membrane")
    t.add_argument("--out", required=True, metavar="msd_NAME.pt")
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
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    t.add_argument("--overwrite", action="store_true")
    t.set_defaults(func=_cmd_train_extractor)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in the cards of trained models
    if getattr(args, "threads", 0):  # every verb's --threads
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except FewcellError as err:
        print(f"fewcell: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fewcell: cancelled.", file=sys.stderr)
        return 130

