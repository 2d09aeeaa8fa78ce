"""Reading the CLI's inputs (images, labels, support pairs), checking and writing its outputs."""
from __future__ import annotations

import sys
from pathlib import Path

from ..engine.core.errors import FewcellError


def read_labels(path, what: str = "labels"):
    """A labels file: value v is class v, 0 background. A file holding exactly the values 0 and 255 (the usual
    binary-mask export) is read as 0/1, said in one stderr sentence; values far above the number of classes
    (e.g. 0, 1, 200) are refused with one sentence."""
    import numpy as np

    from ..engine.core.files import read_image

    lab = read_image(path, what)
    values = np.unique(lab)
    if values.tolist() == [0, 255]:
        print(f"fewcell: {path} holds only 0 and 255: read as a binary mask (255 = class 1).", file=sys.stderr)
        return (lab > 0).astype(np.uint8)
    classes = int((values > 0).sum())
    if values.size and values.max() > max(32, 4 * classes):
        shown = ", ".join(str(v) for v in values[:6]) + (", …" if values.size > 6 else "")
        raise FewcellError(f"The {what} {path} hold the values {shown}: class values must be 1..K for K classes "
                           "(0 = background); relabel them 1, 2, … (or save a binary mask as 0/1 or 0/255).")
    return lab


def labels_for(images: list[str], labels: list[str]) -> list[str | None]:
    """One labels path (or None = unannotated) per image, from a list in order or a folder of same stems."""
    if len(labels) == 1 and Path(labels[0]).is_dir():
        folder = Path(labels[0])
        found: list[str | None] = []
        for img in images:
            hits = sorted(f for f in folder.iterdir() if f.stem == Path(img).stem and f.is_file())
            found.append(str(hits[0]) if hits else None)
        if not any(found):
            raise FewcellError(
                f"No file in {folder} has the name (stem) of any IMAGE; name each labels file like its image."
            )
        return found
    if len(labels) != len(images):
        raise FewcellError(
            f"{len(images)} images but {len(labels)} --labels files: give one labels file per IMAGE in the same "
            "order (write 'none' for an unannotated image), or a folder holding files with the images' names."
        )
    return [None if lab.lower() in ("none", "-") else lab for lab in labels]


def read_set(a):
    """Read IMAGEs and labels into annotated planes; returns (data, layout) with layout = [(path, n_planes, stack)]."""
    from ..engine.core.annotation import annotate
    from ..engine.core.files import read_image
    from ..engine.core.image import planes_of

    pairs = labels_for(a.images, a.labels)
    data, layout = [], []
    for path, lab_path in zip(a.images, pairs):
        name = Path(path).name
        planes, stack = planes_of(read_image(path), name)
        if lab_path is None:
            lab_planes = [None] * len(planes)
        else:
            lab = read_labels(lab_path, "labels")
            if stack:
                if lab.shape[:1] != (len(planes),) or lab.ndim != 3:
                    raise FewcellError(
                        f"{lab_path} has shape {lab.shape} but the stack {name} has {len(planes)} planes of "
                        f"{planes[0].shape[0]}×{planes[0].shape[1]}; give a labels stack of the same shape."
                    )
                # in a stack, a plane whose labels are all 0 is an unannotated plane
                lab_planes = [lp if lp.any() else None for lp in lab]
            else:
                lab_planes = [lab]
        for z, (pl, lp) in enumerate(zip(planes, lab_planes)):
            pname = f"{name} plane {z}" if stack else name
            boxes = a.box if lp is not None else ()
            if lp is not None and a.oneshot:
                boxes = a.box
            data.append(annotate(pl, lp, boxes, name=pname, full=bool(a.oneshot and lp is not None)))
        layout.append((path, len(planes), stack))
    return data, layout


def parse_class_names(items) -> dict:
    names = {}
    for item in items or ():
        value, sep, name = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise FewcellError(f"--class-name takes VALUE=NAME, e.g. 1=nucleus, not '{item}'.")
        names[int(value)] = name
    return names


def write_results(out: Path, layout, planes: list, source_kind: str, classes: dict, instances: str | None,
                   extra: dict | None = None) -> None:
    import numpy as np

    from ..engine.core.files import write_result_labels

    i = 0
    for path, n, stack in layout:
        lab = np.stack(planes[i : i + n]) if stack else planes[i]
        i += n
        target = out / f"{Path(path).stem}.tif"
        write_result_labels(target, lab, str(path), classes, instances, source_kind, extra)
        print(target)


def read_support(a) -> list:
    """AnnotatedImages from --support IMAGE LABELS pairs (stacks give one per annotated plane) and --box."""
    import numpy as np

    from ..engine.core.files import read_image
    from ..engine.core.image import planes_of
    from ..engine.fewshot import support

    data = []
    for img_path, lab_path in a.support:
        name = Path(img_path).name
        planes, stack = planes_of(read_image(img_path), name)
        lab = read_labels(lab_path, "labels")
        if stack:
            if lab.ndim != 3 or lab.shape[0] != len(planes):
                raise FewcellError(
                    f"{lab_path} has shape {lab.shape} but the stack {name} has {len(planes)} planes; give a labels "
                    "stack of the same shape."
                )
            lab_planes = list(lab)
        else:
            lab_planes = [lab]
        for z, (plane, lp) in enumerate(zip(planes, lab_planes)):
            if stack and not np.asarray(lp).any():
                continue  # an all-0 plane of a labels stack is unannotated
            data.append(support(plane, lp, a.box or (), name=f"{name} plane {z}" if stack else name))
    if not data:
        raise FewcellError("No support plane holds labels; paint at least one structure in one support image.")
    return data


def check_model_target(path: str | None, overwrite: bool) -> None:
    """Fail before any work if a model file would silently replace another, something that is not a file, or land
    in a missing folder."""
    from ..engine.core.files import check_file_target

    if path is not None:
        check_file_target(path, overwrite)
