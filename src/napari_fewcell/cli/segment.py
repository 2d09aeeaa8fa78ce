"""``fewcell segment``: segment whole images from one labelled prompt box (workflow 1)."""
from __future__ import annotations

from pathlib import Path

from ..engine.core.files import check_out_dir
from .args import add_box, add_device, add_images, add_out, add_overwrite, add_tau, add_weights
from .bar import Bar


def add_parser(sub) -> None:
    s = sub.add_parser("segment", help="segment whole images from one labelled prompt box")
    add_images(s, "images to segment (TIFF or anything skimage reads)")
    s.add_argument("--prompt-image", required=True, metavar="P.tif", help="image holding the prompt box")
    s.add_argument(
        "--prompt-labels", required=True, metavar="L.tif",
        help="labels: the size of the prompt image (only the box is read) or exactly the box's size",
    )
    add_box(s, "prompt box")
    add_out(s, "DIR", "folder for <IMAGE stem>.tif label images")
    add_tau(s, "attention temperature (default: the weights' own, 0.1)")
    add_weights(s, "weights file (default: shipped weights)")
    add_device(s)
    s.add_argument(
        "--attention", default="prototypes", choices=["prototypes", "exact"],
        help="prototypes: fast (default); exact: every prompt pixel is a key (slow on CPU)",
    )
    s.add_argument("--prototypes", type=int, default=64, help="k-means prototypes per class (fast path)")
    add_overwrite(s, "replace existing <stem>.tif files in --out")
    s.set_defaults(func=cmd_segment)


def cmd_segment(a) -> int:
    from ..engine.core.files import read_image, write_labels_tif
    from ..engine.prompt import PromptParams, Segmenter

    params = PromptParams(tau=a.tau, attention=a.attention, prototypes=a.prototypes, weights=a.weights, device=a.device)
    seg = Segmenter(params)
    prompt = seg.prepare_prompt(read_image(a.prompt_image), read_image(a.prompt_labels, "prompt labels"), a.box)
    out = check_out_dir(a.out, overwrite=a.overwrite, stems=[Path(p).stem for p in a.images])  # after the
    # prompt is known to be good, so a bad prompt leaves no empty --out folder behind
    for path in a.images:
        labels = seg.segment(read_image(path), prompt, Bar(Path(path).name))
        target = out / f"{Path(path).stem}.tif"
        write_labels_tif(target, labels, source=str(path), overwrite=True)
        print(target)
    return 0
