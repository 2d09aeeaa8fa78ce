"""What the user is told of the self-check (:mod:`.adapt`): one sentence for the widget's status and the CLI's stderr.

The number is the chosen path's estimate inside the boxes, with the error it had against whole images on image types
the network never saw. None is shown where it is known to be unreliable: when the check could score no part of the
prompt (:attr:`Adaptation.unchecked`), and when a class covers under :data:`adapt.SPARSE` of the boxes' pixels (on
the leave-one-out folds' test boxes such estimates were off by 0.03 to 0.37, pessimistic: a quadrant holds too few
of the class's pixels to score; benchmarks/check_error.py). Either way the sentence says why and what to do.
"""
from __future__ import annotations

import numpy as np

from .adapt import PATH_NAMES, SPARSE
from .annotated import sparse_share

#: how far the self-check's estimate (inside the boxes) was from the whole image's Dice, for the path "auto" chose,
#: over the leave-one-out folds' boxes where a number is shown (7 image types the weights never saw, test split; 23
#: boxes, 0.075 mean, 0.162 largest; 3 sparse boxes shown none, 2 unchecked): benchmarks/check_error.py →
#: benchmarks/results/check_error_nofigure.md. The sentence quotes it, the mean rounded up.
CHECK_ERROR = {"mean": 0.08, "max": 0.16, "boxes": 23, "types": 7}


def withheld(path: str | None, check: dict | None, labels: np.ndarray | None = None,
             unchecked: bool = False) -> tuple[str, float | None]:
    """Why no number is shown, as (reason, share): ("unchecked", None) when the check could score no part of the
    prompt, ("none", None) without an estimate for ``path``, ("sparse", share) when a class covers under
    :data:`SPARSE` of ``labels`` (the boxes' pixels' classes), and ("", None) when the number is shown."""
    if unchecked:
        return "unchecked", None
    if not check or path not in check:
        return "none", None
    share = sparse(labels)
    return ("sparse", share) if share is not None else ("", None)


def estimate_shown(path: str | None, check: dict | None, labels: np.ndarray | None = None,
                   unchecked: bool = False) -> float | None:
    """The estimate the sentence quotes (``check[path]``), or None where it shows none (:func:`withheld`)."""
    return None if withheld(path, check, labels, unchecked)[0] else float(check[path])


def sparse(labels: np.ndarray | None) -> float | None:
    """The share of the thinnest class of ``labels`` when it is under :data:`SPARSE`, else None."""
    share = sparse_share(labels) if labels is not None and len(labels) else None
    return share if share is not None and share < SPARSE else None


def estimate_text(path: str | None, check: dict | None, boxes: int = 1, labels: np.ndarray | None = None,
                  unchecked: bool = False) -> str:
    """The sentence the widget and the CLI show: what the self-check measured inside the box(es), that the whole
    image may differ and by how much it did on image types the network never saw, and for one box a suggestion to add
    another. ``labels``: the class of each of the boxes' pixels (``Prompt.box_labels``). Where no number is shown
    (:func:`withheld`) the sentence says why and what to do. Empty when there is no estimate otherwise
    (adapt="none", or a prompt of boxes of several images: prompt_from_boxes)."""
    where = "your boxes" if boxes > 1 else "your box"
    used = f"({PATH_NAMES[path]} was used)" if path in PATH_NAMES else ""
    reason, share = withheld(path, check, labels, unchecked)
    if reason == "unchecked" and used:
        return (f"No self-check: a class of {where} lies in one {'box' if boxes > 1 else 'corner'} only, so no part "
                f"can be predicted from the others {used}. Add a box where every class is common for a checked result")
    if reason == "sparse":
        return (f"No self-check figure: a class covers only {share:.0%} of {where}, too few pixels to judge the result "
                f"by {used}. Add a box where it is common for a checked result")
    if reason:
        return ""
    e = CHECK_ERROR
    text = (f"Self-check inside {where}: Dice ≈ {check[path]:.2f} ({PATH_NAMES[path]}); the whole image may differ "
            f"(on {e['types']} image types the network never saw, by {e['mean']:.2f} on average, up to {e['max']:.2f})")
    return text + ". Add a box elsewhere in the image for a surer result" if boxes == 1 else text
