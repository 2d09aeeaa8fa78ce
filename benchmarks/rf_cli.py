"""The RF baseline as a command, for the end-to-end comparison with `fewcell segment`: a fresh process that
starts Python, imports scikit-image and scikit-learn, reads the prompt image, computes its filters, fits the
forest on the box, then for every image reads it, computes its filters, predicts and writes a TIFF — what an
ilastik-style headless pixel classifier does for the same job.

    python benchmarks/rf_cli.py IMG ... --prompt-image P --prompt-labels BOX_LABELS --box Y X H W --out DIR
"""
from __future__ import annotations

import argparse
from pathlib import Path

import tifffile
from common import RFBaseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--prompt-image", required=True)
    ap.add_argument("--prompt-labels", required=True, help="labels of the box alone (H×W)")
    ap.add_argument("--box", nargs=4, type=int, required=True, metavar=("Y", "X", "H", "W"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rf = RFBaseline(a.threads)
    y, x, h, w = a.box
    feat = rf.features(tifffile.imread(a.prompt_image))
    labels = tifffile.imread(a.prompt_labels)
    clf = rf.forest(feat[y : y + h, x : x + w].reshape(-1, feat.shape[-1]), labels.reshape(-1))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in a.images:
        pred = rf.predict(clf, rf.features(tifffile.imread(path)))
        tifffile.imwrite(out / f"{Path(path).stem}.tif", pred.astype("uint8"))


if __name__ == "__main__":
    main()
