"""The runnable API scripts of examples/ (linked from the README and docs/api.md) run as a user runs them."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import tifffile

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_segment_example_writes_a_good_labels_file(tmp_path, monkeypatch, capsys):
    run_example("segment_nuclei.py", str(tmp_path), monkeypatch=monkeypatch)
    result = tifffile.imread(tmp_path / "nuclei_labels.tif")
    truth = tifffile.imread(EXAMPLES.parent / "sample_data" / "nuclei_labels.tif")
    fg = 2 * np.sum((result == 1) & (truth == 1)) / (np.sum(result == 1) + np.sum(truth == 1))
    assert result.shape == truth.shape and fg > 0.8
    assert "Self-check inside your box" in capsys.readouterr().out


def test_partial_example_runs_quick(tmp_path, monkeypatch, capsys):
    run_example("partial_labels.py", str(tmp_path), "--quick", monkeypatch=monkeypatch)
    assert (tmp_path / "nuclei_net.pt").is_file() and (tmp_path / "nuclei_net.json").is_file()
    assert "pseudo-labels for 4 images" in capsys.readouterr().out
