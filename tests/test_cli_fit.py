"""`fewcell fit` and `fewcell predict --model MODEL.npz`, called as the issue's contract says."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_fewcell.cli import main
from napari_fewcell.engine.core.files import read_labels_meta

from .conftest import blobs, dice_mean


@pytest.fixture
def files(tmp_path):
    paths = {}
    for i in range(3):
        img, mask = blobs((96, 104), seed=30 + i, n=12)
        paths[f"img{i}"], paths[f"lab{i}"] = tmp_path / f"img{i}.tif", tmp_path / f"lab{i}.tif"
        paths[f"truth{i}"] = mask
        tifffile.imwrite(paths[f"img{i}"], img)
        tifffile.imwrite(paths[f"lab{i}"], mask)
    return paths


def test_fit_then_predict_contract(files, tmp_path):
    model, out = tmp_path / "m.npz", tmp_path / "pred"
    cmd = [sys.executable, "-m", "napari_fewcell.cli", "fit", "--support", str(files["img0"]), str(files["lab0"]),
           "--support", str(files["img1"]), str(files["lab1"]), "--out", str(model), "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "class 1: logistic Dice loss" in done.stderr and model.is_file()
    cmd = [sys.executable, "-m", "napari_fewcell.cli", "predict", "--model", str(model), str(files["img2"]),
           "--out", str(out), "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pred = tifffile.imread(out / "img2.tif")
    assert dice_mean(pred, files["truth2"]) > 0.9
    meta = read_labels_meta(out / "img2.tif")
    assert meta["kind"] == "prediction" and meta["model"] == str(model)


def test_fit_with_boxes_and_a_stack(files, tmp_path, capsys):
    stack = np.stack([tifffile.imread(files[f"img{i}"]) for i in range(3)])
    labels = np.stack([files["truth0"], np.zeros_like(files["truth1"]), files["truth2"]])  # plane 1 unannotated
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "stack_labels.tif", labels)
    model = tmp_path / "boxes.npz"
    assert main(["fit", "--support", str(tmp_path / "stack.tif"), str(tmp_path / "stack_labels.tif"),
                 "--box", "0", "0", "64", "64", "--box", "64", "0", "32", "104", "--out", str(model),
                 "--class-name", "1=blob", "--device", "cpu", "--intensity", "support", "--precision", "bfloat16"]) == 0
    from napari_fewcell.engine.fewshot import Perceptron

    fitted = Perceptron.load(model)
    assert fitted.intensity_range is not None  # the support's range is kept in the model
    assert fitted.meta["feature_precision"] == "bfloat16" and fitted.meta["params"]["precision"] == "bfloat16"
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), str(tmp_path / "stack.tif"), "--out", str(out)]) == 0
    pred = tifffile.imread(out / "stack.tif")
    assert pred.shape == stack.shape
    assert dice_mean(pred[1], files["truth1"]) > 0.9
    assert read_labels_meta(out / "stack.tif")["classes"] == {"1": "blob"}


def test_fit_bad_inputs(files, tmp_path, capsys):
    def err(argv):
        assert main(argv) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    model = str(tmp_path / "m.npz")
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, files["truth0"][:50])
    assert "image's height and width" in err(["fit", "--support", str(files["img0"]), str(small), "--out", model])
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros_like(files["truth0"]))
    assert "only background" in err(["fit", "--support", str(files["img0"]), str(empty), "--out", model])
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros_like(tifffile.imread(files["img1"])))
    assert "uniform" in err(["fit", "--support", str(files["img0"]), str(files["lab0"]),
                             "--support", str(blank), str(files["lab1"]), "--out", model])
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.repeat(tifffile.imread(files["img1"])[..., None], 3, -1))
    assert "same number of channels" in err(["fit", "--support", str(files["img0"]), str(files["lab0"]),
                                             "--support", str(rgb), str(files["lab1"]), "--out", model])
    assert ".npz" in err(["fit", "--support", str(files["img0"]), str(files["lab0"]), "--out", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit):  # argparse: the choices are listed
        main(["fit", "--support", str(files["img0"]), str(files["lab0"]), "--out", model, "--precision", "half"])
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.pt").exists()
    assert main(["fit", "--support", str(files["img0"]), str(files["lab0"]), "--out", model]) == 0
    assert "already exists" in err(["fit", "--support", str(files["img0"]), str(files["lab0"]), "--out", model])
    assert "for networks only" in err(["predict", "--model", model, str(files["img2"]), "--tta",
                                       "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK junk")
    assert "is not a napari-fewcell" in err(["predict", "--model", str(bad), str(files["img2"]),
                                             "--out", str(tmp_path / "o")])
