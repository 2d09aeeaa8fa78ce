"""``fewcell segment``: segment whole images from one labelled prompt box (workflow 1)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..engine.prompt.params import PromptParams
from .args import (
    add_box,
    add_device,
    add_images,
    add_instances,
    add_out,
    add_overwrite,
    add_tau,
    add_weights,
    field_option,
)
from .bar import Bar
from .batch import add_batch_options, check_batch_args, check_before_work, expand_inputs, run_batch

DEFAULTS = PromptParams()  #: the defaults of every option below (a light module: --help needs no torch)


def add_parser(sub) -> None:
    s = sub.add_parser("segment", help="segment whole images from one labelled prompt box")
    add_images(s, "images or stacks (Z×H×W: every plane) to segment: files (TIFF or anything skimage reads), "
                  "folders, quoted globs, zarr arrays")
    s.add_argument("--prompt-image", required=True, metavar="P.tif", help="image holding the prompt box")
    s.add_argument(
        "--prompt-labels", required=True, metavar="L.tif",
        help="labels: the size of the prompt image (only the box is read) or exactly the box's size",
    )
    add_box(s, "prompt box; repeat it for several boxes of the prompt image (then --prompt-labels must be the "
               "size of the prompt image; a pixel in two boxes counts once; their order does not matter)", repeat=True)
    s.add_argument(
        "--corrected", nargs=2, metavar=("RESULT", "EDITED"), default=None,
        help="corrections: a class-label result of the prompt image (as this command writes it) and your edited "
             "copy of it; every pixel you changed outside the boxes (painted with a class, or erased to 0 = "
             "background) joins the prompt",
    )
    field_option(s, "--stroke-weight", PromptParams, "stroke_weight",
                 f"how many pixels a corrected pixel counts for in the attention (default {DEFAULTS.stroke_weight:g})")
    add_out(s, "DIR", "folder for <IMAGE stem>.tif label images (<stem>.zarr for a big zarr input)")
    add_tau(s, "attention temperature (default: the weights' own, 0.1)")
    add_weights(s, "weights file (default: shipped weights)")
    add_device(s)
    field_option(s, "--attention", PromptParams, "attention",
                 "prototypes: fast (default); exact: every prompt pixel is a key (slow on CPU)")
    field_option(s, "--prototypes", PromptParams, "prototypes", "k-means prototypes per class (fast path)")
    field_option(
        s, "--adapt", PromptParams, "adapt",
        help="adapt to the prompt: none = attention only; forest = intensity/edge/texture filters in a random "
             "forest, no network; fuse = attention + those filters in a random forest; finetune = a few seconds "
             "of fine-tuning a copy of the network on the box; auto = the "
             f"better of none and fuse by a check inside the box (default: {DEFAULTS.adapt})",
    )
    s.add_argument("--fuse-embedding", action="store_true",
                   help="the fused path's forest also reads each pixel's 32-d embedding (a feature bank; +0.35 Dice "
                        "on validation images of 7 unseen types, ~0.5 s more per prompt)")
    field_option(s, "--balance", PromptParams, "balance",
                 help="attention alone weighs each class's prompt pixels as n^-B: 0 = as they are (default), 1 = "
                      "every class alike, so a thin class (membranes, sparse objects) is not outvoted (on validation "
                      "images of unseen types +5.6 Dice for attention alone, but lower in-domain)")
    field_option(s, "--forest-balance", PromptParams, "forest_balance",
                 help="the fused and forest paths weigh each class's probability as n^-B, n its pixels in the "
                      "boxes: 0 = the boxes' class shares as the prior, 1 = every class alike, so a class the box "
                      "holds little of is not outvoted elsewhere in the image")
    field_option(s, "--sparse-balance", PromptParams, "sparse_balance",
                 help="with --adapt auto, a box where a class covers under 10 %% takes attention alone with its "
                      "classes weighed as n^-B, whatever the self-check says: 0 = off, 1 = every class alike "
                      f"(default: {DEFAULTS.sparse_balance:g})")
    add_instances(s)
    add_overwrite(s, "replace existing <stem>.tif files in --out")
    add_batch_options(s)
    s.set_defaults(func=cmd_segment)


def cmd_segment(a) -> int:
    from ..engine.batch.specs import PromptSpec
    from ..engine.core.files import read_image
    from ..engine.core.geometry import box_values
    from ..engine.core.progress import run
    from ..engine.prompt import SegmentRequest, plan_colour, prompt_job
    from .inputs import read_labels

    check_batch_args(a)
    params = PromptParams(tau=a.tau, attention=a.attention, prototypes=a.prototypes, weights=a.weights, device=a.device,
                          adapt=a.adapt, stroke_weight=a.stroke_weight, fuse_embedding=a.fuse_embedding,
                          balance=a.balance, forest_balance=a.forest_balance, sparse_balance=a.sparse_balance)
    params.check()
    sources = expand_inputs(a.images)
    firsts = check_before_work(a, sources)  # a bad input or an existing output is said before the prompt is checked
    boxes = [list(box_values(b)) for b in a.box]
    prompt_labels = read_labels(a.prompt_labels, "prompt labels")
    request = SegmentRequest(read_image(a.prompt_image, "prompt image"), prompt_labels, boxes,
                             firsts, [Path(s).name for s in sources], params,
                             corrections=read_corrections(a.corrected, boxes, prompt_labels))
    request.params, sentence = plan_colour(request)  # said before the work; the job's own plan then changes nothing
    if sentence:
        print(f"fewcell: {sentence}.", file=sys.stderr)
    seg, prompt, _ = run(prompt_job(request), Bar("prompt"))
    print_estimate(prompt)
    meta = {"kind": "segmentation", "prompt_image": str(a.prompt_image),
            **seg.provenance(prompt, boxes)}
    return run_batch(a, seg.blocks_for(prompt), PromptSpec(seg.params, prompt), sources, meta, a.instances)


def read_corrections(corrected, boxes, prompt_labels):
    """The corrections of ``--corrected RESULT EDITED`` (None without it): the edited copy's values are classes of
    the prompt (``prompt_labels``); a result of instances (one id per object) is read as its one foreground class."""
    if not corrected:
        return None
    import numpy as np

    from ..engine.core.annotation import label_values
    from ..engine.core.errors import FewcellError
    from ..engine.core.files import read_image, read_labels_meta
    from ..engine.prompt import corrections_from_edit

    result, edited = (read_image(path, what) for path, what in zip(corrected, ("result", "edited result")))
    edited, top = label_values(edited, "edited result"), int(np.max(prompt_labels, initial=0))
    foreground, tif = None, str(corrected[0]).lower().endswith((".tif", ".tiff"))
    if tif and read_labels_meta(corrected[0]).get("kind") == "instances":
        if top != 1:
            raise FewcellError(f"{corrected[0]} holds instances (one id per object) of a prompt with {top} classes, "
                               "so an edited id cannot say which class; correct a result made without --instances.")
        foreground = 1
    elif edited.size and edited.max() > top:
        raise FewcellError(f"The edited result holds the value {edited.max()}, but the prompt's classes are 0 to "
                           f"{top}; paint corrections with the prompt's class values (0 = background).")
    return corrections_from_edit(result, edited, [tuple(b) for b in boxes], foreground)


def print_estimate(prompt) -> None:
    """The self-check on stderr, one line: the chosen path's estimate and every path's (not where no figure is shown:
    ``estimate_shown``)."""
    from ..engine.prompt import estimate_shown, estimate_text

    labels = prompt.box_labels
    text = estimate_text(prompt.path, prompt.check, len(prompt.boxes), labels, prompt.unchecked)
    if text:
        shown = estimate_shown(prompt.path, prompt.check, labels, prompt.unchecked) is not None
        each = ", ".join(f"{path} {dice:.2f}" for path, dice in prompt.check.items()) if shown else ""
        print(f"fewcell: {text}." + (f" Every path's self-check: {each}." if each else ""), file=sys.stderr)
