"""npe2 writer: a Labels layer to a compressed TIFF, written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .engine.io import write_labels_tif


def write_labels(path: str, data, meta: dict) -> list[str]:
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        path = path.with_suffix(".tif")
    source = str((meta.get("metadata") or {}).get("source_image", meta.get("name", "")))
    write_labels_tif(path, np.asarray(data), source=source, overwrite=True)
    return [str(path)]
