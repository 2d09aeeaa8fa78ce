"""Reading images and writing label TIFFs atomically (tifffile; skimage for other formats)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from .errors import FewcellError


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """Read an image file into a numpy array; one-sentence FewcellError on failure."""
    path = Path(path)
    if not path.is_file():
        raise FewcellError(f"The {what} file {path} does not exist.")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return tifffile.imread(path)
        from skimage.io import imread

        return imread(path)
    except Exception:  # noqa: BLE001
        raise FewcellError(f"Could not read the {what} {path}: it is not an image file this tool can read.") from None


def check_out_dir(out: str | Path, overwrite: bool = False, stems: list[str] = ()) -> Path:
    """Create ``out`` if needed and make sure we can write there without clobbering anything."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FewcellError(f"--out {out} is a file, not a folder; give a folder to write the results into.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".fewcell-write-test"):
            pass
    except OSError:
        raise FewcellError(f"Cannot write into {out}; choose a folder you have write permission for.") from None
    seen = set()
    for stem in stems:
        if stem in seen:
            raise FewcellError(f"Two input images are named '{stem}'; their results would overwrite each other.")
        seen.add(stem)
        if not overwrite and (out / f"{stem}.tif").exists():
            raise FewcellError(
                f"{out / (stem + '.tif')} already exists; pass --overwrite to replace it or choose another --out."
            )
    return out


def write_labels_tif(path: str | Path, labels: np.ndarray, source: str = "", classes: dict | None = None,
                     overwrite: bool = False) -> Path:
    """Write labels as a compressed TIFF atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FewcellError(f"{path} already exists; choose another name or allow overwriting.")
    labels = np.asarray(labels)
    if labels.max(initial=0) <= 255:
        labels = labels.astype(np.uint8)
    meta = {"software": "napari-fewcell", "source": source, "classes": classes or {}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        tifffile.imwrite(tmp, labels, compression="zlib", description=json.dumps(meta), metadata=None)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise FewcellError(f"Could not write {path}; check the folder's permissions and free space.") from None
    return path
