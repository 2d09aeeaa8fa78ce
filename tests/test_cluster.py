"""Batch runs on dask.distributed (issue 13): a LocalCluster of 2 worker processes gives the single process's
labels; a worker killed mid-run costs nothing (its units run again elsewhere, every output is present and right,
nothing half-written); --resume then does no work; a worker without the package is named in one sentence."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr

from napari_fewcell.cli import main
from napari_fewcell.engine.batch import plan
from napari_fewcell.engine.batch.cluster import run_on_cluster
from napari_fewcell.engine.batch.specs import PromptSpec
from napari_fewcell.engine.prompt import PromptParams, Segmenter

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def job(sample, tmp_path_factory):
    """8 small images and one big zarr (3 × 2 blocks), a prompt adapted on the shipped weights, the reference labels."""
    d = tmp_path_factory.mktemp("cluster")
    (d / "in").mkdir()
    params = PromptParams(device="cpu", adapt="none")
    seg = Segmenter(params)
    prompt = seg.prepare_prompt(sample["image"], sample["prompt_labels"], sample["box"])
    ref = {}
    for i in range(8):
        img = np.roll(sample["image"], 61 * i, axis=1)[:256, :320]
        tifffile.imwrite(d / "in" / f"im{i}.tif", img)
        ref[f"im{i}.tif"] = seg.segment(img, prompt)
    big = np.tile(sample["image"], (2, 1))
    z = zarr.create_array(store=str(d / "in" / "big.zarr"), shape=big.shape, chunks=(512, 512), dtype=big.dtype)
    z[:] = big
    ref["big.zarr"] = seg.segment(big, prompt)
    sources = sorted(str(p) for p in (d / "in").iterdir())
    return {"dir": d, "seg": seg, "prompt": prompt, "spec": PromptSpec(params, prompt), "ref": ref, "sources": sources}


def read_out(path):
    return zarr.open_array(str(path))[:] if path.suffix == ".zarr" else tifffile.imread(path)


def test_killed_worker_then_resume(job, tmp_path):
    out = tmp_path / "out"
    model = job["seg"].blocks_for(job["prompt"])
    outputs, units = plan(job["sources"], out, model)
    assert len(units) == 8 + 6  # 8 images, 3 × 2 blocks of the big one
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    killed = []

    def kill_one(unit, record):  # after the first unit is done, kill a worker that is busy with another one
        if not killed:
            busy = [w for w, keys in client.processing().items() if keys] or list(client.processing())
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        run_on_cluster(client, job["spec"], units, outputs, on_done=kill_one, progress_bar=False)
        pids = set(client.run(os.getpid).values())
    finally:
        client.close()
        cluster.close()
    assert killed and killed[0] not in pids  # the worker did die (and its nanny started another)
    assert sorted(os.listdir(out)) == sorted([*(f"im{i}.tif" for i in range(8)), "big.zarr"])  # nothing half-written
    for name, ref in job["ref"].items():
        np.testing.assert_array_equal(read_out(out / name), ref, err_msg=name)
    assert plan(job["sources"], out, model, resume=True)[1] == []  # --resume: no work left


def test_cli_local_cluster_matches_one_process(job, sample, tmp_path, capfd):
    """Same labels as one process; a successful run's stderr holds no ERROR and no traceback (issue 22 item 4: closing
    the local cluster used to log the progress feed's CancelledError); --resume then has nothing to do."""
    p = sample["paths"]
    argv = ["segment", str(job["dir"] / "in"), "--prompt-image", str(p["image"]), "--prompt-labels",
            str(p["prompt_labels"]), "--box", *map(str, sample["box"]), "--device", "cpu", "--adapt", "none",
            "--out", str(tmp_path / "o"), "--workers", "2"]
    done = subprocess.run([sys.executable, "-m", "napari_fewcell.cli", *argv], capture_output=True, text=True,
                          timeout=600)  # as a user runs it: distributed's log goes to this process's stderr
    assert done.returncode == 0, done.stderr
    for name, ref in job["ref"].items():
        np.testing.assert_array_equal(read_out(tmp_path / "o" / name), ref, err_msg=name)
    err = done.stderr
    assert "ERROR" not in err and "Traceback" not in err and "already in use" not in err, err
    assert main([*argv, "--resume"]) == 0
    assert "nothing to do" in capfd.readouterr().err


def test_worker_without_the_package(sample, tmp_path, capsys):
    """A worker whose Python cannot import napari_fewcell: one sentence naming it, exit 2."""
    cluster = distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    blocked = ("import sys; sys.modules['napari_fewcell'] = None; "
               "from distributed.cli.dask_worker import main; main()")
    worker = subprocess.Popen([sys.executable, "-c", blocked, cluster.scheduler_address, "--nthreads", "1",
                               "--no-nanny", "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = distributed.Client(cluster)
        client.wait_for_workers(1, timeout=120)
        client.close()
        p = sample["paths"]
        assert main(["segment", str(p["image"]), "--prompt-image", str(p["image"]), "--prompt-labels",
                     str(p["prompt_labels"]), "--box", *map(str, sample["box"]), "--device", "cpu", "--adapt", "none",
                     "--out", str(tmp_path / "o"), "--scheduler", cluster.scheduler_address]) == 2
        err = capsys.readouterr().err
        assert "cannot import napari_fewcell" in err and "install napari-fewcell" in err and "Traceback" not in err
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        cluster.close()
        time.sleep(0.1)
