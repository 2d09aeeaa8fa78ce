"""``fewcell fit``: fit a perceptron on MSD feature maps of a few support images (workflow 3, paper 002)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..engine.core.errors import FewcellError
from .args import add_box, add_class_name, add_out, add_run_options, field_option
from .bar import Bar
from .inputs import check_model_target, parse_class_names, read_support


def add_parser(sub) -> None:
    from ..engine.fewshot.params import INTENSITIES
    from ..engine.fewshot.params import PerceptronParams as FitDefaults

    f = sub.add_parser("fit", help="fit a perceptron on MSD feature maps of a few support images (paper 002)",
                       description=cmd_fit.__doc__)
    f.add_argument("--support", required=True, nargs=2, action="append", metavar=("IMAGE", "LABELS"),
                   help="a support image and its labels (repeat for several; stacks give one pair per labelled plane)")
    add_box(f, "an annotated region in every support image (repeat for several; default: whole images)",
            value_type=int, required=False, repeat=True)
    add_out(f, "MODEL.npz")
    field_option(f, "--lam", FitDefaults, "lam", "L2 penalty λ on the weights")
    f.add_argument("--no-bfgs", action="store_true", help="keep the logistic-regression weights (no Dice refinement)")
    field_option(f, "--max-pixels", FitDefaults, "max_pixels", "support pixels used for fitting")
    f.add_argument("--extractors", nargs="+", default=None, metavar="NAME", help="shipped extractors (default: all)")
    field_option(f, "--intensity", FitDefaults, "intensity", choices=INTENSITIES,
                 help="map every image's intensities with the support images' pooled range ('support', kept in "
                        "the model) or with its own ('image')")
    field_option(f, "--precision", FitDefaults, "precision",
                 help="the feature extractors' arithmetic: auto = bfloat16 where this computer computes it natively, "
                      "else float32 (recorded in the model, which is applied the same way)")
    add_class_name(f)
    add_run_options(f, cmd_fit, "replace an existing MODEL.npz")


def cmd_fit(a) -> int:
    """Fit a perceptron σ(b + g(x)·W) on the features of the shipped MSD extractors: logistic regression, then BFGS on
    the Dice loss. Labels: value v is class v, 0 background; with --box only the boxes are read, else the whole
    image. Apply it with `fewcell predict`.
    """
    from ..engine.core.progress import run
    from ..engine.fewshot import FitRequest, PerceptronParams, fit_job, fit_report

    params = PerceptronParams(lam=a.lam, bfgs=not a.no_bfgs, max_pixels=a.max_pixels, device=a.device, seed=a.seed,
                              extractors=tuple(a.extractors) if a.extractors else None, intensity=a.intensity,
                              precision=a.precision)
    params.check()
    names = parse_class_names(a.class_name)
    request = FitRequest(read_support(a), params, names)
    request.check()
    check_model_target(a.out, a.overwrite)
    if Path(a.out).suffix.lower() != ".npz":
        raise FewcellError(f"--out {a.out} should end in .npz (the perceptron is saved as arrays + JSON).")
    model = run(fit_job(request), Bar("fit"))
    for line in fit_report(model):
        print(line, file=sys.stderr)
    model.save(a.out)
    print(a.out)
    return 0
