"""Files: reading images, checking an output folder, writing any file atomically, label TIFFs
(tifffile; skimage for other formats) and their export."""
from __future__ import annotations

import hashlib
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
        raise FewcellError(f"The {what} {path} is a folder; give an image file." if path.is_dir()
                           else f"The {what} file {path} does not exist.")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return tifffile.imread(path)
        from skimage.io import imread

        return imread(path)
    except Exception:  # noqa: BLE001
        raise FewcellError(f"Could not read the {what} {path}: it is not an image file this tool can read.") from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (model and weights files: which exact file made a result)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_out_dir(out: str | Path, overwrite: bool = False, stems: list[str] = (), create: bool = True) -> Path:
    """Create ``out`` if needed and make sure we can write there without clobbering anything; ``create`` False:
    the same checks, creating nothing (a folder that does not exist yet must be creatable)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FewcellError(f"--out {out} is a file, not a folder; give a folder to write the results into.")
    if not create:
        parent = next(p for p in [out, *out.parents] if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise FewcellError(f"Cannot write into {out}; choose a folder you have write permission for.")
    else:
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
                f"{out / (stem + '.tif')} already exists; allow overwriting (--overwrite) or choose another folder."
            )
    return out


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (macOS, Windows): the classic set-and-restore
    os.umask(mask)
    return mask


def require_file_target(path: Path) -> None:
    """One sentence where ``path``, a file to write, exists as something else: a folder, a device, a pipe."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device or a pipe)"
        raise FewcellError(f"{path} is {kind}; give the name of a file to write.")


def check_file_target(path: str | Path, overwrite: bool | None, what: str = "") -> Path:
    """Fail before any work where a file to write would land in a missing folder, replace something that is not a
    file, or (``overwrite`` False) replace a file; None: replacing a file is the verb's way (a resumed run)."""
    p = Path(path)
    require_file_target(p)
    if p.exists() and overwrite is False:
        raise FewcellError(f"{p} already exists; pass --overwrite to replace it or choose another name.")
    if not p.parent.is_dir():
        raise FewcellError(f"The folder {p.parent} for {what or p.name} does not exist; create it first.")
    return p


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    The file gets the usual permissions (0666 less the umask; ``mkstemp`` makes 0600), and a
    failure leaves neither a half-written file under ``path`` nor the temporary file.
    """
    path = Path(path)
    require_file_target(path)  # never replace a folder or a device (/dev/null) by a file
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FewcellError(f"Could not write {path}; check the folder's permissions and free space.") from None


def write_labels_tif(path: str | Path, labels: np.ndarray, source: str = "", classes: dict | None = None,
                     overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write labels (2D, or a stack as a multi-page TIFF) compressed and atomically.

    The TIFF's description holds JSON: ``{"software", "source", "classes": {value: name}, ...extra}``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FewcellError(f"{path} already exists; choose another name or allow overwriting.")
    labels = np.asarray(labels)
    if labels.dtype == bool or (labels.size and labels.min() >= 0 and labels.max() <= 255):
        labels = labels.astype(np.uint8)
    elif labels.size and labels.min() >= 0 and labels.max() < 2**16:
        labels = labels.astype(np.uint16)
    meta = {"software": "napari-fewcell", "source": source,
            "classes": {str(k): str(v) for k, v in (classes or {}).items()}, **(extra or {})}
    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, labels, compression="zlib", photometric="minisblack",
                                                    description=json.dumps(meta), metadata=None))  # never RGB
    return path


def read_labels_meta(path: str | Path) -> dict:
    """The JSON metadata napari-fewcell wrote into a label TIFF ({} for other TIFFs)."""
    with tifffile.TiffFile(path) as tf:
        desc = tf.pages[0].description
    try:
        meta = json.loads(desc)
    except (TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) and meta.get("software") == "napari-fewcell" else {}


def export_labels(folder: str | Path, items, overwrite: bool = False, classes: dict | None = None,
                  instances: str | None = None, kind: str = "pseudo-labels") -> list[Path]:
    """Write ``items`` = [(stem, labels (2D or stack), source name)] as ``folder/<stem>.tif``.

    Every target is checked before anything is written, so a conflict writes nothing; each
    file is written atomically. ``instances`` = "components" | "watershed" numbers objects.
    """
    folder = check_out_dir(folder, overwrite=overwrite, stems=[stem for stem, _, _ in items])
    return [write_result_labels(folder / f"{stem}.tif", labels, source, classes, instances, kind)
            for stem, labels, source in items]


def write_result_labels(path: str | Path, labels: np.ndarray, source: str, classes: dict | None,
                        instances: str | None, kind: str, extra: dict | None = None) -> Path:
    """Write a result's labels (replacing ``path``): class labels of ``kind``, or with ``instances`` =
    "components" | "watershed" one id per object (then no class names, and kind "instances")."""
    from .instances import instance_labels

    lab = instance_labels(labels, instances) if instances else labels
    return write_labels_tif(path, lab, source=source, classes={} if instances else classes, overwrite=True,
                            extra={**(extra or {}), "kind": "instances" if instances else kind})
