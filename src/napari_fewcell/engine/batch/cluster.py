"""Batch units on a dask.distributed cluster: a ``LocalCluster`` on this machine, or the scheduler of a real
cluster (``dask scheduler`` and ``dask worker ADDRESS`` by hand, dask-jobqueue on SLURM, ...).

Each worker builds the model once, when it joins (a worker plugin; a worker that is restarted after a crash
builds it again), keeps it, and does units: it reads its input and writes its output itself, so the client
only ever receives a few numbers per unit. A unit lost with its worker is run again by the scheduler on
another one; units write their outputs atomically, so nothing half-written is ever left under a final name.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from typing import Callable, Sequence

from distributed import WorkerPlugin

from ..core.errors import FewcellError
from ..core.progress import run
from .units import Output, Unit, finish, run_unit

PLUGIN = "napari-fewcell"  #: the worker plugin's name
CONNECT_SECONDS = 8  #: how long to try an unreachable scheduler before saying so
WORKER_WAIT_SECONDS = 60  #: how long to wait for workers to join a scheduler


class ModelPlugin(WorkerPlugin):
    """A worker plugin holding the model that ``spec.build()`` makes, built once per worker process (again on a
    worker that restarts), with ``threads`` torch threads for each of the worker's task threads."""

    name = PLUGIN

    def __init__(self, spec, threads: int = 1):
        self.spec, self.threads, self.model, self.images = spec, threads, None, {}

    def setup(self, worker):
        import torch

        torch.set_num_threads(max(1, self.threads))
        self.model, self.images = self.spec.build(), {}


def unit_task(unit: Unit, instances: str | None = None) -> dict:
    """One unit on a worker, with the model its plugin holds."""
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN]
    return run(run_unit(plugin.model, unit, plugin.images, instances))


def connect(scheduler: str, workers: int = 0):
    """A Client: ``scheduler`` = "local" starts a LocalCluster of ``workers`` processes (default: one per core, one
    thread each); otherwise it is a scheduler's address, and ``workers`` (if given) is how many to wait for."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        return Client(cluster)
    try:
        client = Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
    except Exception:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a malformed address
        raise FewcellError(
            f"Could not reach a dask scheduler at {scheduler} within {CONNECT_SECONDS} s; start one with "
            "`dask scheduler` (it prints its address, e.g. tcp://HOST:8786) or use --scheduler local."
        ) from None
    try:
        client.wait_for_workers(max(1, workers), timeout=WORKER_WAIT_SECONDS)
    except Exception:  # noqa: BLE001 - TimeoutError
        client.close()
        raise FewcellError(
            f"No {'' if workers <= 1 else f'{workers} '}dask worker joined the scheduler at {scheduler} within "
            f"{WORKER_WAIT_SECONDS} s; start workers with `dask worker {scheduler}`."
        ) from None
    return client


@contextlib.contextmanager
def session(scheduler: str, workers: int = 0):
    """``connect``, check the workers, and close the client (and a local cluster) at the end."""
    client = connect(scheduler, workers)
    try:
        check_workers(client)
        yield client
    finally:
        cluster = client.cluster if scheduler == "local" else None
        # closing a local cluster cancels the scheduler's progress-bar feed, which distributed logs as an ERROR with
        # a CancelledError traceback on a run that succeeded: quiet the local scheduler's log while it closes
        quiet = logging.getLogger("distributed.scheduler")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL if cluster is not None else level)
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            quiet.setLevel(level)


def check_workers(client) -> None:
    """Every worker can import this very napari-fewcell; one sentence naming the others."""
    from ..core.version import __version__

    def probe():  # a closure: pickled by value, so a worker without the package can still run it
        try:
            import napari_fewcell.engine.batch  # noqa: F401 - what a worker runs (importing it imports the package)
            from napari_fewcell.engine.core.version import __version__ as theirs

            return theirs
        except Exception as err:  # noqa: BLE001
            return f"! {type(err).__name__}"

    answers = client.run(probe)
    missing = sorted(w for w, v in answers.items() if str(v).startswith("!"))
    if missing:
        raise FewcellError(
            f"The dask worker(s) {', '.join(missing)} cannot import napari_fewcell; install napari-fewcell "
            f"{__version__} in the workers' Python environment (pip install napari-fewcell) and start them again."
        )
    other = sorted(f"{w} ({v})" for w, v in answers.items() if v != __version__)
    if other:
        raise FewcellError(
            f"The dask worker(s) {', '.join(other)} run another napari-fewcell than this one ({__version__}); "
            "install the same version everywhere."
        )


def torch_threads(client) -> int:
    """torch threads per task thread: the task threads of a LocalCluster share this machine's cores; on a cluster
    each gets one (workers are started one per core or with --nthreads, and dask's nanny sets OMP_NUM_THREADS=1)."""
    if type(getattr(client, "cluster", None)).__name__ == "LocalCluster":
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        return max(1, (os.cpu_count() or 1) // max(1, threads))
    return 1


def run_on_cluster(client, spec, units: Sequence[Unit], outputs: Sequence[Output], instances: str | None = None,
                   on_done: Callable[[Unit, dict], None] | None = None, progress_bar: bool = True) -> list[dict]:
    """Do ``units`` on the cluster's workers (each builds ``spec``'s model once), then move every complete output
    into place. With ``progress_bar``, dask's progress bar is drawn on stderr; ``on_done(unit, record)`` is called
    as each unit finishes. Returns the units' records (no pixels)."""
    from distributed import as_completed
    from distributed.diagnostics.progressbar import progress

    client.register_plugin(ModelPlugin(spec, torch_threads(client)), name=PLUGIN)
    run_id = uuid.uuid4().hex[:8]
    futures = client.map(unit_task, list(units), instances=instances, pure=False,
                         key=[f"fewcell-{run_id}-{i}" for i in range(len(units))])
    unit_of = {f.key: u for f, u in zip(futures, units)}
    try:
        if progress_bar and units:
            with contextlib.redirect_stdout(sys.stderr):
                progress(futures, multi=False, interval="1s")
        records = []
        for fut in as_completed(futures):
            record = fut.result()  # a unit's FewcellError is raised here, with its sentence
            records.append(record)
            if on_done is not None:
                on_done(unit_of[fut.key], record)
    finally:
        client.cancel(futures)
    for o in outputs:
        finish(o)
    return records
