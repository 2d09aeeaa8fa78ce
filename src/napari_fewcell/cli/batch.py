"""What ``fewcell segment`` and ``fewcell predict`` share for many images or huge ones: inputs given as files,
folders, globs or zarr arrays; outputs planned as units of work; the units done in this process (the default) or
on a dask.distributed cluster (``--scheduler local|ADDRESS``, ``--workers N``); ``--resume``."""
from __future__ import annotations

import glob
import sys
from pathlib import Path

from ..engine.core.errors import FewcellError
from .bar import Overall

#: the image files a folder given as input contributes (beside zarr arrays)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def add_batch_options(p) -> None:
    p.add_argument(
        "--scheduler", default=None, metavar="local|ADDRESS",
        help="run on dask.distributed: 'local' starts a cluster on this machine, an address such as "
             "tcp://HOST:8786 uses a running scheduler (default: this one process)",
    )
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes of a local cluster (default: one per core); with an ADDRESS, wait for N "
                        "workers; alone, implies --scheduler local")
    p.add_argument("--resume", action="store_true",
                   help="skip outputs that are complete (and the finished blocks of a big image); redo the rest")
    p.add_argument("--out-format", default="auto", choices=["auto", "tif", "zarr"],
                   help="labels of big images (zarr inputs or TIFFs over 4096×4096): auto = zarr for a zarr input, "
                        "TIFF (tiled) otherwise; small images are always written as TIFF")


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))


def expand_inputs(items: list[str]) -> list[str]:
    """IMAGE arguments → input paths: a file; a zarr array (a folder); a folder (its image files and zarr arrays,
    sorted); a glob pattern ('plates/*.tif', quoted so the shell leaves it alone)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if is_zarr(p) or p.is_file():
            out.append(str(p))
        elif p.is_dir():
            found = sorted(str(c) for c in p.iterdir() if (c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
                           or is_zarr(c))
            if not found:
                raise FewcellError(f"The folder {p} holds no image file ({', '.join(IMAGE_SUFFIXES)}) or zarr array.")
            out += found
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
            if not found:
                raise FewcellError(f"The pattern {item} matches no file.")
            out += expand_inputs(found)
        else:
            raise FewcellError(f"The image {p} does not exist.")
    return out


def check_before_work(a, sources: list[str]) -> list:
    """Before any work (a prompt check, a model load): every input opens and every output may be written; nothing
    is created when one of them refuses. Returns each input's first plane (a LazyImage)."""
    from ..engine.batch import targets
    from ..engine.core.lazy import open_planes

    firsts = [open_planes(src)[0] for src in sources]
    targets(sources, a.out, a.out_format, a.resume, a.overwrite, create=False)
    for src, first in zip(sources, firsts):
        require_finite(src, first)
    return firsts


def require_finite(source: str, first) -> None:
    """One sentence for a float image (not a big one: that is checked block by block as it is read) holding NaN or
    infinite pixels, before any of the images is labelled."""
    import numpy as np

    from ..engine.batch.units import is_big_source
    from ..engine.core.image import require_finite as finite
    from ..engine.core.lazy import open_array

    if np.issubdtype(np.dtype(first.dtype), np.floating) and not is_big_source(source):
        finite(np.asarray(open_array(source)), f"image {Path(source).name}")


def check_batch_args(a) -> None:
    if a.workers < 0:
        raise FewcellError("--workers is a number of worker processes, 1 or more.")
    if a.workers and a.scheduler is None:
        a.scheduler = "local"


def run_batch(a, model, spec, sources: list[str], meta: dict, instances: str | None = None) -> int:
    """Plan the outputs of ``sources`` in ``a.out`` and do the work with ``model`` here, or on a cluster where each
    worker builds its own from ``spec``; prints each output written. The output folder is made only once the work can
    start (the cluster reached)."""
    from ..engine.batch import finish, run_unit
    from ..engine.core.progress import run

    if a.scheduler is None:
        outputs, units = planned(a, model, sources, meta, instances)
        images: dict = {}
        overall = Overall("labels", len(units))  # one bar over every image and block, with the time left
        for k, unit in enumerate(units):
            run(run_unit(model, unit, images, instances), overall.unit(k, unit.name))
        for o in outputs:
            finish(o)
    else:
        from ..engine.batch.cluster import run_on_cluster, session

        with session(a.scheduler, a.workers) as client:
            outputs, units = planned(a, model, sources, meta, instances)
            run_on_cluster(client, spec, units, outputs, instances)
    for o in outputs:
        if Path(o.target).exists():
            print(o.target)
    return 0


def planned(a, model, sources: list[str], meta: dict, instances: str | None):
    """The outputs and units of work of ``sources`` (:func:`engine.batch.plan`, which makes the output folder)."""
    from ..engine.batch import plan
    from ..engine.batch.units import is_big_source

    if instances and any(is_big_source(s) for s in sources):
        raise FewcellError("--instances needs each image whole; big images are labelled block by block, so number "
                           "their objects afterwards, or leave out --instances.")
    outputs, units = plan(sources, a.out, model, a.out_format, a.resume, a.overwrite, meta)
    if a.resume and not units:
        print("fewcell: every output is already complete; nothing to do.", file=sys.stderr)
    return outputs, units
