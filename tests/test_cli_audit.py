"""Bad input found by an audit of every verb (2026-12-08): each gets one sentence and exit status 2, before any work
and without leaving a file or an empty folder behind."""
import json
import os
import stat

import numpy as np
import pytest
import tifffile

from napari_fewcell.cli import main

from .conftest import blobs


def _bad(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith("fewcell: error: ") and not any("Traceback" in line for line in err)
    return err[-1]


@pytest.fixture
def files(tmp_path):
    img, mask = blobs((96, 104), seed=40, n=12)
    paths = {"img": tmp_path / "img.tif", "lab": tmp_path / "lab.tif", "mask": mask, "image": img}
    tifffile.imwrite(paths["img"], img)
    tifffile.imwrite(paths["lab"], mask)
    return paths


def _segment(files, out, *extra, box=("16", "16", "64", "64"), images=None):
    return ["segment", *(images or [str(files["img"])]), "--prompt-image", str(files["img"]), "--prompt-labels",
            str(files["lab"]), "--box", *box, "--out", str(out), "--device", "cpu", *extra]


def _fit(files, out, *extra):
    return ["fit", "--support", str(files["img"]), str(files["lab"]), "--out", str(out), "--device", "cpu", *extra]


@pytest.mark.parametrize("threads", ["-1", "99999999999", "100000"])
def test_threads_out_of_range(files, tmp_path, capsys, threads):
    err = _bad(capsys, _fit(files, tmp_path / "m.npz", "--threads", threads))
    assert "number of threads must be 0" in err and not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("box", [("nan", "16", "64", "64"), ("16", "16", "inf", "64")])
def test_box_not_finite(files, tmp_path, capsys, box):
    assert "not a finite number" in _bad(capsys, _segment(files, tmp_path / "o", box=box))
    argv = ["pseudolabel", str(files["img"]), "--labels", str(files["lab"]), "--box", *box, "--epochs", "0",
            "--out", str(tmp_path / "p")]
    assert "not a finite number" in _bad(capsys, argv)
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_seed_out_of_range(files, tmp_path, capsys, seed):
    assert "seed must be a whole number from 0" in _bad(capsys, _fit(files, tmp_path / "m.npz", "--seed", seed))
    err = _bad(capsys, ["suggest", str(files["img"]), "--json", str(tmp_path / "s.json"), "--seed", seed])
    assert "seed must be" in err and not (tmp_path / "s.json").exists()


def test_output_that_is_a_folder_or_a_pipe(files, tmp_path, capsys):
    """Refused before the work, even with --overwrite: a folder or a device is never replaced by a file."""
    folder = tmp_path / "adir.npz"
    folder.mkdir()
    assert "is a folder" in _bad(capsys, _fit(files, folder, "--overwrite"))
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    err = _bad(capsys, ["suggest", str(files["img"]), "--json", str(pipe), "--overwrite"])
    assert "not a regular file" in err and stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert "is a folder" in _bad(capsys, ["pretrain", "--data", str(tmp_path), "--out", str(folder)])


def test_unreadable_float_image_is_said_before_any_output(files, tmp_path, capsys):
    """Two images, the second with a NaN pixel: nothing is written, not even the first image's result."""
    bad = files["image"].astype(np.float32)
    bad[5, 5] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", bad)
    argv = _segment(files, tmp_path / "o", images=[str(files["img"]), str(tmp_path / "nan.tif")])
    assert "nan.tif contains NaN or infinite pixels" in _bad(capsys, argv)
    assert not (tmp_path / "o").exists()


def test_pseudolabel_error_leaves_no_folder(files, tmp_path, capsys):
    argv = ["pseudolabel", str(files["img"]), "--labels", str(files["lab"]), "--box", "16", "16", "64", "64",
            "--epochs", "0", "--weights", str(files["lab"]), "--out", str(tmp_path / "p")]
    _bad(capsys, argv)
    assert not (tmp_path / "p").exists()


def test_corrected_values_are_the_prompts_classes(files, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(_segment(files, out)) == 0
    result = tifffile.imread(out / "img.tif")
    for value, dtype, words in [(7, np.uint8, "prompt's classes are 0 to 1"), (np.nan, np.float32, "whole numbers")]:
        edited = result.astype(dtype)
        edited[0:4, 0:4] = value
        tifffile.imwrite(tmp_path / "edited.tif", edited)
        argv = _segment(files, tmp_path / "o2", "--corrected", str(out / "img.tif"), str(tmp_path / "edited.tif"))
        assert words in _bad(capsys, argv)
    assert not (tmp_path / "o2").exists()


def test_a_folder_named_as_a_file(files, tmp_path, capsys):
    folder = tmp_path / "adir"
    folder.mkdir()
    argv = _segment(files, tmp_path / "o")
    argv[argv.index("--prompt-labels") + 1] = str(folder)
    assert "is a folder" in _bad(capsys, argv)
    assert "is a folder, not a file" in _bad(capsys, _segment(files, tmp_path / "o", "--weights", str(folder)))
    assert "is a file" in _bad(capsys, ["pretrain", "--data", str(files["img"]), "--out", str(tmp_path / "w.pt")])


def test_pretrain_dataset_weight_not_a_number(tmp_path, capsys):
    argv = ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "w.pt"), "--datasets", "foo=abc"]
    assert "not a number of 0 or more" in _bad(capsys, argv)


def test_fit_max_pixels_names_itself(files, tmp_path, capsys):
    assert "--max-pixels" in _bad(capsys, _fit(files, tmp_path / "m.npz", "--max-pixels", "0"))


def test_tampered_perceptron_is_refused(files, tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(_fit(files, model)) == 0
    with np.load(model, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for name, change in [("extractors", lambda a, m: m.update(extractors=["bogus"])),
                         ("nan", lambda a, m: a.update(W=np.full_like(a["W"], np.nan)))]:
        a, m = dict(arrays), json.loads(json.dumps(meta))
        change(a, m)
        a["meta"] = np.array(json.dumps(m))
        np.savez(tmp_path / f"{name}.npz", **a)
        argv = ["predict", "--model", str(tmp_path / f"{name}.npz"), str(files["img"]), "--out", str(tmp_path / "p")]
        assert "damaged" in _bad(capsys, argv)
    assert not (tmp_path / "p").exists()


def test_blank_image_suggestions_warn_nothing(tmp_path, capsys, recwarn):
    tifffile.imwrite(tmp_path / "zeros.tif", np.zeros((128, 128), np.uint8))
    assert main(["suggest", str(tmp_path / "zeros.tif"), "--json", str(tmp_path / "s.json"), "--tile", "32"]) == 0
    assert not [w for w in recwarn if "cluster" in str(w.message)]
    assert json.loads((tmp_path / "s.json").read_text())


def test_prompt_image_is_named_in_its_sentence(files, tmp_path, capsys):
    bad = files["image"].astype(np.float32)
    bad[5, 5] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", bad)
    argv = _segment(files, tmp_path / "o")
    argv[argv.index("--prompt-image") + 1] = str(tmp_path / "inf.tif")
    assert "The prompt image contains NaN or infinite pixels" in _bad(capsys, argv)
    argv[argv.index("--prompt-image") + 1] = str(tmp_path / "missing.tif")
    assert "The prompt image file" in _bad(capsys, argv)
    assert not (tmp_path / "o").exists()
