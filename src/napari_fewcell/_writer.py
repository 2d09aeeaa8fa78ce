"""npe2 writer: a Labels layer to a compressed TIFF (a stack as multi-page), written atomically.

The TIFF's description holds JSON with the source image's name and the class names, read
back by :func:`napari_fewcell.engine.core.files.read_labels_meta`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .engine.core.files import write_labels_tif


def write_labels(path: str, data, meta: dict) -> list[str]:
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        path = path.with_suffix(".tif")
    md = meta.get("metadata") or {}
    source = str(md.get("fewcell_pseudo_of") or md.get("source_image") or meta.get("name", ""))
    classes = md.get("fewcell_classes") or {}
    # napari asks before replacing an existing file, so the writer may overwrite; the write is atomic
    write_labels_tif(path, np.asarray(data), source=source, classes=classes, overwrite=True,
                     extra={"layer": str(meta.get("name", ""))})
    return [str(path)]
