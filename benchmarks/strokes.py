"""A simulated user's one correction stroke on a one-box result (bench_boxes.py, studies/study_strokes.py,
studies/choose_stroke_weight.py)."""
from __future__ import annotations

import numpy as np
from common import BOX
from scipy import ndimage as ndi

RADIUS, SKELETON = 2, 150  #: the stroke: brush radius (px), at most this many skeleton pixels


def add_check_strokes_option(ap) -> None:
    """``--check-strokes learn|ignore`` (PromptParams.check_strokes; default the engine's): whether the self-check's
    fits of the prompt with the stroke learn from it, or read the boxes alone (the stroke never changes auto's path).
    ``args.check_strokes == "learn"`` is the parameter's value."""
    from napari_fewcell.engine.prompt import PromptParams

    ap.add_argument("--check-strokes", choices=("learn", "ignore"),
                    default="learn" if PromptParams.check_strokes else "ignore",
                    help="PromptParams.check_strokes of the prompt with the stroke: its self-check learns from the "
                    "stroke (learn) or reads the boxes alone (ignore: the stroke never changes auto's path)")


def correction_stroke(pred: np.ndarray, truth: np.ndarray, box: tuple[int, int]) -> dict:
    """The user's one correction of the one-box result on its own image: the largest 8-connected component of
    wrong pixels outside the box; the SKELETON skeleton pixels of it nearest its most interior point (the maximum
    of its distance transform); a brush of radius RADIUS along them, restricted to the component. Returns the
    stroke mask (None when nothing outside the box is wrong), the corrections array (true class on the stroke,
    −1 elsewhere) and what the report says about it."""
    from skimage.morphology import disk, skeletonize

    wrong = (pred > 0) != (truth > 0)
    y, x = box
    wrong[y : y + BOX, x : x + BOX] = False
    info = {"wrong_px": int(wrong.sum()), "component_px": 0, "stroke_px": 0, "skeleton_px": 0, "fg_px": 0,
            "where": None}
    if not wrong.any():
        return {"mask": None, "corrections": None, **info}
    lab, _ = ndi.label(wrong, structure=np.ones((3, 3), bool))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    comp_full = lab == int(sizes.argmax())
    sl = ndi.find_objects(comp_full.astype(np.int32))[0]
    comp = comp_full[sl]
    dist = ndi.distance_transform_edt(np.pad(comp, 1))[1:-1, 1:-1]
    peak = np.array(np.unravel_index(int(dist.argmax()), dist.shape))
    pts = np.argwhere(skeletonize(comp))
    if not len(pts):  # (skeletonize keeps at least a pixel of any non-empty shape; belt and braces)
        pts = peak[None]
    keep = pts[np.argsort(((pts - peak) ** 2).sum(1), kind="stable")[:SKELETON]]
    seed = np.zeros(comp.shape, bool)
    seed[keep[:, 0], keep[:, 1]] = True
    stroke = ndi.binary_dilation(seed, disk(RADIUS).astype(bool)) & comp
    mask = np.zeros(truth.shape, bool)
    mask[sl] = stroke
    corrections = np.full(truth.shape, -1, np.int32)
    corrections[mask] = truth[mask]
    info.update(component_px=int(comp.sum()), stroke_px=int(mask.sum()), skeleton_px=len(keep),
                fg_px=int(truth[mask].sum()), where=(int(sl[0].start + peak[0]), int(sl[1].start + peak[1])))
    return {"mask": mask, "corrections": corrections, **info}
