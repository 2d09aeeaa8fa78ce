#!/usr/bin/env python
"""A colour prompt with a gray image, or the reverse (issue 22, item 2): what should the tool do when the kinds
differ? Two ways, measured on the DSB 2018 H&E set (colour) and fluorescence set (gray):

- **keep**: the gray image is read as gray repeated to 3 channels (what the tool did before, silently);
- **luminance**: the colour image is converted to its luminance (skimage's ``rgb2gray``), so both are gray.

Each set gives two mismatches: its own kind for the prompt and the other kind for the scored images, and the
reverse. H&E's gray kind is its luminance; fluorescence's colour kind is the usual RGB export of one channel
(the signal in green, red and blue 0). The matched case (both in the set's own kind) and the RF baseline (on
the images as given, the same boxes) are beside. Seeded 64×64 boxes from train images, the first test images
scored; the default path (``auto``) and attention alone (``none``).

    python benchmarks/bench_colour.py --data ../shared/data --out benchmarks/results/colour.md
"""
from __future__ import annotations

import argparse

import bench_generalise as bg
import numpy as np
from common import (
    Dataset,
    ForestPrompt,
    RFBaseline,
    finish_report,
    mean_sd,
    report_header,
    score_prompts,
    seeded_box,
    set_threads,
)
from skimage.color import rgb2gray

from napari_fewcell.engine.nets.unet import default_weights_path, load_model

SETS = {"dsb2018_he": "colour", "dsb2018_fluo": "gray"}


def as_kind(img: np.ndarray, kind: str) -> np.ndarray:
    """``img`` in the given kind: gray (H, W), gray repeated to (H, W, 3), or colour (H, W, 3)."""
    if kind == "gray3":
        return np.repeat(as_kind(img, "gray")[..., None], 3, axis=-1)
    if kind == "gray":
        return img if img.ndim == 2 else (rgb2gray(img[..., :3]) * 255).astype(np.float32)
    if img.ndim == 3:
        return img
    out = np.zeros((*img.shape, 3), img.dtype)
    out[..., 1] = img  # one channel exported as RGB: the signal in green
    return out


def resolve(prompt_kind: str, image_kind: str, way: str) -> tuple[str, str]:
    """The kinds the engine gets for the prompt and the image under ``way`` (keep: the gray one repeated to 3
    channels, as the engine reads gray anyway, so that the RF baseline gets as many channels on both sides;
    luminance: gray)."""
    if prompt_kind == image_kind:
        return prompt_kind, image_kind
    if way == "luminance":
        return "gray", "gray"
    return tuple("gray3" if k == "gray" else k for k in (prompt_kind, image_kind))


def view(ds: Dataset, prompt_kind: str, image_kind: str, prompt_ids, image_ids) -> Dataset:
    """A copy of ``ds`` whose prompt images and scored images are in the given kinds."""
    out = Dataset.__new__(Dataset)
    out.__dict__.update(ds.__dict__)
    out.images = dict(ds.images)
    for i in prompt_ids:
        out.images[i] = as_kind(ds.images[i], prompt_kind)
    for i in image_ids:
        out.images[i] = as_kind(ds.images[i], image_kind)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--weights", default=str(default_weights_path()))
    ap.add_argument("--boxes", type=int, default=4)
    ap.add_argument("--max-test", type=int, default=6)
    ap.add_argument("--paths", nargs="+", default=["auto", "none"])
    args = ap.parse_args()
    set_threads(2)
    rf, model, rows = RFBaseline(2), load_model(args.weights), []
    for name, own in SETS.items():
        ds = Dataset(args.data, name)
        other = "gray" if own == "colour" else "colour"
        boxes = [seeded_box(s, ds, 0.05, 0.95) for s in range(args.boxes)]
        prompts, ids = sorted({b[0] for b in boxes}), ds.test[: args.max_test]
        for prompt_kind, image_kind in ((own, own), (own, other), (other, own)):
            ways = ("keep",) if prompt_kind == image_kind else ("keep", "luminance")
            for way in ways:
                pk, ik = resolve(prompt_kind, image_kind, way)
                sub = view(ds, pk, ik, prompts, ids)
                methods = {p: bg.Fewcell(model, args.weights, p, True) for p in args.paths}
                methods["RF"] = ForestPrompt(rf)
                sc = score_prompts(sub, boxes, ids, methods)
                case = "matched" if prompt_kind == image_kind else way
                rows.append((name, prompt_kind, image_kind, case, {m: mean_sd(s.per_box()) for m, s in sc.items()},
                             {m: s.mean() for m, s in sc.items()}))
    cols = [*args.paths, "RF"]
    lines = report_header("Colour prompt, gray image (and the reverse): keep or convert to luminance", False) + [
        f"- weights: `{args.weights}`; {args.boxes} seeded 64×64 boxes from train images, the first "
        f"{args.max_test} test images scored; mean of foreground and background Dice %, mean ± sd over boxes",
        "- keep: the gray side is gray repeated to 3 channels; luminance: the colour side is converted to gray",
        "", "| set | prompt | images | way | " + " | ".join(f"fewcell {c}" if c != "RF" else c for c in cols) + " |",
        "|" + "---|" * (len(cols) + 4)]
    lines += [f"| {n} | {pk} | {ik} | {case} | " + " | ".join(t[c] for c in cols) + " |"
              for n, pk, ik, case, t, _ in rows]
    for way in ("keep", "luminance"):
        vals = [r[5][cols[0]] for r in rows if r[3] == way]
        lines.append(f"\nMean of `{cols[0]}` over the four mismatches, {way}: **{np.mean(vals):.2f}**")
    finish_report(lines, args.out)


if __name__ == "__main__":
    main()
