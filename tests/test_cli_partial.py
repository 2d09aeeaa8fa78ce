"""`fewcell pseudolabel` and `fewcell predict`, called exactly as the issue's contract says."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine.core.files import read_labels_meta
from napari_fewcell.engine.nets.unet import default_weights_path

from .conftest import blobs, dice_mean

FAST = ["--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu"]


@pytest.fixture
def files(tmp_path):
    paths = {}
    for i in range(3):
        img, mask = blobs((112, 112), seed=20 + i, n=14)
        paths[f"img{i}"] = tmp_path / f"img{i}.tif"
        paths[f"lab{i}"] = tmp_path / f"lab{i}.tif"
        paths[f"truth{i}"] = mask
        tifffile.imwrite(paths[f"img{i}"], img)
        tifffile.imwrite(paths[f"lab{i}"], mask)
    return paths


def test_pseudolabel_contract_with_train_net_then_predict(files, tmp_path):
    """The console script, as other tools call it: pseudo-labels for every image + a stage-2 model."""
    out, model = tmp_path / "pl", tmp_path / "net.pt"
    cmd = [sys.executable, "-m", "napari_fewcell.cli", "pseudolabel", str(files["img0"]), str(files["img1"]),
           "--labels", str(files["lab0"]), "none", "--box", "8", "8", "64", "64", "--box", "72", "40", "32", "64",
           "--box", "8", "76", "32", "32",
           "--out", str(out), "--epochs", "1", "--train-net", str(model), "--network-labels", str(tmp_path / "net"),
           "--steps-per-epoch", "2", "--train-steps", "10", "--train-deform", "3",
           "--train-colour-jitter", "0.05",
           "--device", "cpu",
           "--class-name", "1=nucleus"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1: loss pseudo" in proc.stderr and "held-out box Dice" in proc.stderr and "train-net" in proc.stderr
    assert "Labelled with the " in proc.stderr  # which network labelled, and why
    for i in (0, 1):
        lab = tifffile.imread(out / f"img{i}.tif")
        assert lab.shape == (112, 112) and dice_mean(lab, files[f"truth{i}"]) > 0.8
    meta = read_labels_meta(out / "img1.tif")
    assert meta["source"] == str(files["img1"]) and meta["classes"] == {"1": "nucleus"}
    assert model.is_file() and model.with_suffix(".json").is_file()
    for i in (0, 1):  # the trained network's labels of every image, the boxes' annotation kept
        lab = tifffile.imread(tmp_path / "net" / f"img{i}.tif")
        assert lab.shape == (112, 112) and set(np.unique(lab)) <= {0, 1}
        assert read_labels_meta(tmp_path / "net" / f"img{i}.tif")["source"] == str(files[f"img{i}"])
    assert np.array_equal(tifffile.imread(tmp_path / "net" / "img0.tif")[8:72, 8:72], files["truth0"][8:72, 8:72])
    card = json.loads(model.with_suffix(".json").read_text())["card"]
    assert card["params"]["deform"] == 3.0 and card["params"]["rounds"] == card["rounds"] == 2  # the default
    assert card["params"]["precision"] == "auto" and card["precision"] in ("bfloat16", "float32")  # what it used
    assert card["params"]["colour_jitter"] == 0.05

    assert main(["predict", "--model", str(model), str(files["img2"]), "--out", str(tmp_path / "pred"),
                 "--device", "cpu"]) == 0
    pred = tifffile.imread(tmp_path / "pred" / "img2.tif")
    assert pred.shape == (112, 112) and set(np.unique(pred)) <= {0, 1}


def test_labels_folder_stack_and_instances(files, tmp_path):
    stack = np.stack([tifffile.imread(files[f"img{i}"]) for i in range(3)])
    labels = np.zeros_like(stack, dtype=np.uint8)
    labels[1] = files["truth1"]  # only plane 1 annotated; the others are all 0 = unannotated
    (tmp_path / "imgs").mkdir()
    (tmp_path / "labs").mkdir()
    tifffile.imwrite(tmp_path / "imgs" / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "imgs" / "plain.tif", tifffile.imread(files["img2"]))
    tifffile.imwrite(tmp_path / "labs" / "stack.tif", labels)
    out = tmp_path / "out"
    assert main(["pseudolabel", str(tmp_path / "imgs" / "stack.tif"), str(tmp_path / "imgs" / "plain.tif"),
                 "--labels", str(tmp_path / "labs"), "--box", "8", "8", "64", "64", "--out", str(out),
                 "--instances", "components", *FAST]) == 0
    res = tifffile.imread(out / "stack.tif")
    assert res.shape == stack.shape and res.max() > 5  # instance ids, not classes
    assert dice_mean(res[2] > 0, files["truth2"]) > 0.8
    assert read_labels_meta(out / "plain.tif")["kind"] == "instances"


def test_oneshot_option(files, tmp_path):
    assert main(["pseudolabel", str(files["img0"]), str(files["img1"]), "--labels", str(files["lab0"]), "none",
                 "--box", "8", "8", "64", "64", "--out", str(tmp_path / "o"), "--oneshot", *FAST]) == 0
    assert dice_mean(tifffile.imread(tmp_path / "o" / "img1.tif"), files["truth1"]) > 0.8


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewcell: error: ") and "Traceback" not in err and err.count("\n") == 1
    return err


def test_bad_inputs_give_one_sentence(files, tmp_path, capsys):
    base = ["pseudolabel", str(files["img0"]), str(files["img1"])]
    box = ["--box", "8", "8", "64", "64"]
    out = ["--out", str(tmp_path / "o")]
    assert "2 images but 1 --labels" in _err(capsys, [*base, "--labels", str(files["lab0"]), *box, *out])
    assert "overlap" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box,
                                      "--box", "40", "40", "32", "32", *out])
    assert "not inside" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none",
                                         "--box", "100", "100", "64", "64", *out])
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((50, 50), np.uint8))
    assert "50×50" in _err(capsys, [*base, "--labels", str(tmp_path / "small.tif"), "none", *box, *out])
    full = ["pseudolabel", str(files["img0"]), "--labels", str(files["lab0"]), "--box", "0", "0", "112", "112"]
    assert "nothing to pseudo-label" in _err(capsys, [*full, *out, *FAST])
    assert "at least one step" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                                "--train-net", str(tmp_path / "n.pt"), "--train-steps", "0"])
    assert "minimum confidence" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                                 "--train-net", str(tmp_path / "n.pt"), "--train-min-confidence", "1"])
    assert "elastic deformation" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                                  "--train-net", str(tmp_path / "n.pt"), "--train-deform", "-2"])
    assert "colour jitter" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                            "--train-net", str(tmp_path / "n.pt"), "--train-colour-jitter", "0.7"])
    assert "training rounds" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                              "--train-net", str(tmp_path / "n.pt"), "--train-rounds", "9"])
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage, then its one-line error
        main([*base, "--labels", str(files["lab0"]), "none", *box, *out, "--train-precision", "fp8"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err.splitlines()[-1]
    assert "give --train-net" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                               "--network-labels", str(tmp_path / "nl")])
    assert "same folder" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out, "--train-net",
                                          str(tmp_path / "n.pt"), "--network-labels", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists() and not (tmp_path / "nl").exists()  # bad input leaves nothing behind

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "img0.tif").write_bytes(b"precious")
    assert "already exists" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box,
                                             "--out", str(tmp_path / "busy"), *FAST])
    assert (tmp_path / "busy" / "img0.tif").read_bytes() == b"precious"
    (tmp_path / "net.pt").write_bytes(b"old model")
    assert "net.pt already exists" in _err(capsys, [*base, "--labels", str(files["lab0"]), "none", *box, *out,
                                                    "--train-net", str(tmp_path / "net.pt")])


def test_predict_refuses_foreign_models(files, tmp_path, capsys):
    args = [str(files["img0"]), "--out", str(tmp_path / "p")]
    assert "embedding network" in _err(capsys, ["predict", "--model", str(default_weights_path()), *args])
    torch.save({"format": "napari-fewcell/segnet", "version": 7}, tmp_path / "future.pt")
    assert "version 7" in _err(capsys, ["predict", "--model", str(tmp_path / "future.pt"), *args])
    (tmp_path / "x.pt").write_text("hello")
    assert "another tool" in _err(capsys, ["predict", "--model", str(tmp_path / "x.pt"), *args])
