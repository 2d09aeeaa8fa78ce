"""``fewcell pseudolabel`` (partial labels → pseudo-labels → a network, workflow 2) and ``fewcell predict``
(apply a saved perceptron or network)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..engine.core.errors import FewcellError
from ..engine.core.files import check_out_dir
from .args import (
    add_box,
    add_class_name,
    add_images,
    add_instances,
    add_out,
    add_run_options,
    add_tau,
    add_tta,
    add_weights,
    field_option,
)
from .bar import Bar
from .batch import add_batch_options, check_batch_args, check_before_work, expand_inputs, run_batch
from .inputs import check_model_target, parse_class_names, read_set, write_results


def add_pseudolabel_parser(sub) -> None:
    from ..engine.partial import PseudoParams as PseudoDefaults
    from ..engine.prompt.params import ADAPT_CHOICES

    q = sub.add_parser(
        "pseudolabel",
        help="partial labels (boxes) → pseudo-labels for whole images; optionally train a network on them",
        description=cmd_pseudolabel.__doc__,
    )
    add_images(q, "images (TIFF or anything skimage reads) or stacks")
    q.add_argument("--labels", required=True, nargs="+", metavar="L",
                   help="one labels file per IMAGE in order ('none' for an unannotated one), or a folder of files "
                        "named like the images")
    add_box(q, "an annotated region in every image that has labels (repeat for several)", repeat=True)
    add_out(q, "DIR", "folder for <IMAGE stem>.tif pseudo-labels")
    field_option(q, "--epochs", PseudoDefaults, "epochs", "stage-1 fine-tuning epochs (0 = no fine-tuning)")
    q.add_argument("--train-net", default=None, metavar="MODEL.pt",
                   help="also train a segmentation network on the pseudo-labels and save it here "
                        "(+ MODEL.json card)")
    q.add_argument("--network-labels", default=None, metavar="DIR2",
                   help="with --train-net, also write the trained network's labels of every IMAGE to "
                        "DIR2/<IMAGE stem>.tif (the boxes' annotation kept): better than the pseudo-labels it learnt "
                        "from on the image types measured")
    add_train_options(q)
    field_option(q, "--steps-per-epoch", PseudoDefaults, "steps_per_epoch", "0 = cover the unannotated pixels once")
    field_option(q, "--lr", PseudoDefaults, "lr", "stage-1 learning rate")
    field_option(q, "--patience", PseudoDefaults, "patience",
                 help="with 3+ boxes (one held out to check each epoch): stop after this many epochs without a "
                        "better held-out box (0 = run every epoch)")
    field_option(q, "--adapt", PseudoDefaults, "adapt", choices=ADAPT_CHOICES,
                 help="how the images are labelled from all the boxes with the kept network, as in `fewcell "
                        "segment` (default: auto, the better of attention and attention + filters by the "
                        "self-check)")
    q.add_argument("--oneshot", action="store_true",
                   help="one-shot fine-tuning: images with labels are fully labelled; --box is their prompt")
    add_instances(q)
    add_class_name(q)
    add_tau(q, "attention temperature (default: the weights' own)")
    add_weights(q, "pre-trained embedding weights (default: shipped)")
    add_tta(q, "the stage-2 model averages the 8 flips/rotations when predicting (8× slower)")
    add_run_options(q, cmd_pseudolabel, "replace existing outputs")


def add_train_options(q) -> None:
    """``fewcell pseudolabel``'s options of stage 2, the network trained on the pseudo-labels (``--train-*``)."""
    from ..engine.partial import TrainParams as TrainDefaults

    field_option(q, "--train-steps", TrainDefaults, "steps",
                 f"stage-2 optimiser steps (default {TrainDefaults.steps}; give 1500 with --train-init scratch)")
    field_option(q, "--train-init", TrainDefaults, "init",
                 help=f"stage 2 starts from the pre-trained embedding weights (--weights; only the class head is "
                        f"new) or from scratch (paper 000) (default {TrainDefaults.init})")
    field_option(q, "--train-min-confidence", TrainDefaults, "min_confidence", metavar="P",
                 help="stage 2 learns only pixels that stage 1 labelled with at least this probability (annotated "
                        "pixels always count; default 0: every pixel)")
    field_option(q, "--train-deform", TrainDefaults, "deform", metavar="SD",
                 help="stage 2 warps each training crop elastically, lattice displacements of this standard deviation "
                      f"in pixels (0 = no warp; default {TrainDefaults.deform:g})")
    field_option(q, "--train-colour-jitter", TrainDefaults, "colour_jitter", metavar="J",
                 help="stage 2 moves each channel of a colour image's training crops on its own, gain 1 ± J and "
                      f"shift ± J/2: a stain's variation (gray images are left gray; default "
                      f"{TrainDefaults.colour_jitter:g})")
    field_option(q, "--train-rounds", TrainDefaults, "rounds", metavar="R",
                 help="stage-2 self-training rounds: each round after the first trains a new network on the last one's "
                 f"labels of the images, the boxes' annotation kept (default {TrainDefaults.rounds})")
    field_option(q, "--train-precision", TrainDefaults, "precision",
                 help="stage 2's training arithmetic: auto = bfloat16 where this computer computes it natively "
                      "(faster: CPUs with AVX512-BF16 or AMX, recent GPUs), else float32 (default "
                      f"{TrainDefaults.precision})")


def add_predict_parser(sub) -> None:
    r = sub.add_parser("predict", help="apply a saved model (perceptron .npz or network .pt) to images")
    add_images(r, "images or stacks: files, folders, quoted globs, zarr arrays")
    r.add_argument("--model", required=True, metavar="MODEL",
                   help="a model saved by napari-fewcell: a perceptron (.npz, `fewcell fit`) or a network (.pt)")
    add_out(r, "DIR", "folder for <IMAGE stem>.tif labels")
    add_instances(r)
    add_tta(r, "average the 8 flips/rotations (8× slower)")
    add_batch_options(r)
    add_run_options(r, cmd_predict, "replace existing <stem>.tif files in --out", seed=False)


def cmd_pseudolabel(a) -> int:
    """Fine-tune on IMAGEs annotated only inside --box regions (paper 000 §3.3), write DIR/<IMAGE stem>.tif
    pseudo-labels for every IMAGE, and with --train-net train a fresh network on them. Images may differ in size and
    channel count; a stack (Z×H×W) is a set of planes, and in a labels stack a plane that is all 0 counts as
    unannotated.
    """
    from ..engine.core.progress import run
    from ..engine.partial import PseudoParams, PseudoRequest, TrainParams, network_labels_job, pseudo_job, train_job

    data, layout = read_set(a)
    params = PseudoParams(epochs=a.epochs, steps_per_epoch=a.steps_per_epoch, lr=a.lr, weights=a.weights,
                          device=a.device, seed=a.seed, tau=a.tau, adapt=a.adapt,
                          patience=a.patience)
    tp = TrainParams(steps=a.train_steps, device=a.device, seed=a.seed, tta=a.tta, init=a.train_init,
                     weights=a.weights, min_confidence=a.train_min_confidence, deform=a.train_deform,
                     colour_jitter=a.train_colour_jitter,
                     rounds=a.train_rounds, precision=a.train_precision)
    source = {"trained_on": "pseudo-labels from `fewcell pseudolabel`", "images": [str(p) for p in a.images],
              "boxes": [list(map(int, b)) for b in a.box]}
    request = PseudoRequest(data, params, tp, parse_class_names(a.class_name), source)
    request.check()  # stage 2's settings too, before stage 1 starts
    check_model_target(a.train_net, a.overwrite)
    stems = [Path(p).stem for p, _, _ in layout]
    relabelled = check_network_labels(a, stems)
    check_out_dir(a.out, overwrite=a.overwrite, stems=stems, create=False)  # made when written
    result = run(pseudo_job(request), Bar("pseudo-labels"))
    for line in result.report():
        print(line, file=sys.stderr)
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=stems)
    write_results(out, layout, result.labels, "pseudo-labels", request.class_names, a.instances)
    if a.train_net:
        train = request.train_request(result)
        model = run(train_job(train), Bar("train-net"))
        model.save(a.train_net)
        print(a.train_net)
        if relabelled is not None:
            labels = run(network_labels_job(model, train), Bar("network-labels"))
            relabelled = check_out_dir(relabelled, overwrite=a.overwrite, stems=stems)
            write_results(relabelled, layout, labels, "network labels", request.class_names, a.instances)
    return 0


def check_network_labels(a, stems: list[str]) -> Path | None:
    """--network-labels: checked (and created) before any work; None when not asked for."""
    if a.network_labels is None:
        return None
    if not a.train_net:
        raise FewcellError("--network-labels writes the trained network's labels: give --train-net MODEL.pt too.")
    if Path(a.network_labels).resolve() == Path(a.out).resolve():
        raise FewcellError("--network-labels and --out are the same folder; give the network's labels a folder of "
                           "their own so that neither overwrites the other.")
    return check_out_dir(a.network_labels, overwrite=a.overwrite, stems=stems, create=False)  # made when written


def cmd_predict(a) -> int:
    from ..engine.batch.specs import ModelFileSpec
    from ..engine.models import open_model

    check_batch_args(a)
    sources = expand_inputs(a.images)
    check_before_work(a, sources)  # a bad input or an existing output is said before the model is loaded
    tta = True if a.tta else None
    model = open_model(a.model, device=a.device, tta=tta)  # a perceptron or a network
    meta = {"kind": "prediction", "model": str(a.model), "classes": model.class_names}
    return run_batch(a, model, ModelFileSpec(str(Path(a.model).resolve()), a.device, tta), sources, meta, a.instances)
