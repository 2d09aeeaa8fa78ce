"""Packaging as napari's plugin template does it (issue 23, item 6): the engine, the ``fewcell`` command and dask
workers need no napari and no Qt (the GUI is the ``[all]`` extra); the version is written in one place."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_fewcell import __version__
from napari_fewcell.engine.prompt import PromptParams, Segmenter

ROOT = Path(__file__).resolve().parents[1]
GUI = ("napari", "qtpy", "magicgui", "npe2", "superqt", "vispy", "app_model", "PyQt5", "PyQt6", "PySide2", "PySide6")

#: a sitecustomize that makes every GUI package look uninstalled, in this process and every one it starts (the
#: dask workers too): an environment where ``pip install napari-fewcell`` installed only the core dependencies
NO_GUI = textwrap.dedent(f"""
    import importlib.abc
    import sys

    class NoGui(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {set(GUI)!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

    sys.meta_path.insert(0, NoGui())
""")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_napari_and_qt_are_the_all_extra_only():
    project = pyproject()["project"]
    names = [req.split("[")[0].split(">")[0].split("=")[0].strip() for req in project["dependencies"]]
    assert not set(names) & set(GUI), names
    assert any(req.startswith("napari[all]") for req in project["optional-dependencies"]["all"])


def test_the_version_is_written_once():
    config = pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    source = config["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert source == "napari_fewcell.engine.core.version.__version__"
    from importlib.metadata import version

    assert version("napari-fewcell") == __version__


def test_a_batch_segment_runs_without_napari(sample, tmp_path):
    """`fewcell segment` on two images over a local cluster of two workers, with every GUI package unimportable in
    the command and its workers: the same labels as the engine in this process."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_GUI)
    (tmp_path / "in").mkdir()
    images = [sample["image"][:256, :320], sample["image"][256:, 192:]]
    for i, img in enumerate(images):
        tifffile.imwrite(tmp_path / "in" / f"im{i}.tif", img)
    p = sample["paths"]
    argv = ["segment", str(tmp_path / "in"), "--prompt-image", str(p["image"]), "--prompt-labels",
            str(p["prompt_labels"]), "--box", *map(str, sample["box"]), "--device", "cpu", "--adapt", "none",
            "--out", str(tmp_path / "out"), "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    probe = subprocess.run([sys.executable, "-c", "import napari"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'napari'" in probe.stderr  # the blocker holds
    done = subprocess.run([sys.executable, "-m", "napari_fewcell.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    seg = Segmenter(PromptParams(device="cpu", adapt="none"))
    prompt = seg.prepare_prompt(sample["image"], sample["prompt_labels"], sample["box"])
    for i, img in enumerate(images):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / f"im{i}.tif"), seg.segment(img, prompt))
