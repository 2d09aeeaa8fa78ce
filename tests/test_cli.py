import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_fewcell.cli import main

from .conftest import SAMPLE, blobs, dice_mean

SAMPLE_TRUTH = SAMPLE / "nuclei_labels.tif"  # labels the size of the image: several boxes may be cut from it


def _args(sample, out, *extra):
    p = sample["paths"]
    y, x, h, w = sample["box"]
    return [
        "segment", str(p["image"]), "--prompt-image", str(p["image"]), "--prompt-labels", str(p["prompt_labels"]),
        "--box", str(y), str(x), str(h), str(w), "--out", str(out), *extra,
    ]


def test_cli_end_to_end_on_sample_data(sample, tmp_path):
    """The real console script, as other tools call it."""
    proc = subprocess.run(
        [sys.executable, "-m", "napari_fewcell.cli", *_args(sample, tmp_path / "out", "--device", "cpu")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "labels [" in proc.stderr and "1/1 done (nuclei" in proc.stderr  # one progress bar on stderr
    assert str(tmp_path / "out" / "nuclei.tif") in proc.stdout  # printed before the process ends without teardown
    out = tifffile.imread(tmp_path / "out" / "nuclei.tif")
    assert out.dtype == np.uint8 and out.shape == sample["image"].shape
    assert dice_mean(out, sample["truth"]) > 0.8
    from napari_fewcell.engine.core.files import file_sha256, read_labels_meta
    from napari_fewcell.engine.nets.unet import default_weights_path

    meta = read_labels_meta(tmp_path / "out" / "nuclei.tif")  # provenance in the label file
    assert meta["boxes"] == [list(sample["box"])] and meta["weights_sha256"] == file_sha256(default_weights_path())
    assert meta["kind"] == "segmentation" and meta["adapt"] == "auto" and meta["adapt_path"] in ("none", "fuse")


@pytest.mark.parametrize("slow", [False, True])
def test_cli_process_exit_code_and_sentence(sample, tmp_path, slow):
    """A bad input through the real process: exit status 2 and the sentence on stderr, whether the process ends
    without the interpreter's teardown (the default) or the usual way (FEWCELL_SLOW_EXIT)."""
    argv = _args(sample, tmp_path / "o")
    argv[argv.index("--box") + 3] = "0"  # an empty box
    env = dict(os.environ, **({"FEWCELL_SLOW_EXIT": "1"} if slow else {}))
    proc = subprocess.run([sys.executable, "-m", "napari_fewcell.cli", *argv], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("fewcell: error: The box")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("unbuffered", [False, True])
def test_cli_output_list_to_a_reader_that_went_away(sample, tmp_path, unbuffered):
    """`fewcell segment … | head -0`: the labels are written, and the closed pipe gives status 1 and no traceback,
    whether Python buffers the standard output or not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered
                                                                               else {})
    proc = subprocess.Popen([sys.executable, "-m", "napari_fewcell.cli", *_args(sample, tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc.stdout.close()  # before the command lists what it wrote
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 1
    assert "Traceback" not in err and "Error" not in err
    assert (tmp_path / "o" / "nuclei.tif").exists()


def test_cli_box_sized_labels_and_several_images(tmp_path, capsys):
    img, mask = blobs((140, 150), seed=7)
    img2, _ = blobs((100, 120), seed=8)
    tifffile.imwrite(tmp_path / "a.tif", img)
    tifffile.imwrite(tmp_path / "b.tif", img2)
    tifffile.imwrite(tmp_path / "box.tif", mask[30:94, 40:104])
    code = main(["segment", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--prompt-image", str(tmp_path / "a.tif"),
                 "--prompt-labels", str(tmp_path / "box.tif"), "--box", "30", "40", "64", "64",
                 "--out", str(tmp_path / "o"), "--tau", "0.2", "--attention", "exact"])
    assert code == 0
    assert tifffile.imread(tmp_path / "o" / "a.tif").shape == (140, 150)
    assert tifffile.imread(tmp_path / "o" / "b.tif").shape == (100, 120)


def _bad(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("fewcell: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "box, match",
    [(("256", "416", "0", "64"), "empty"), (("500", "680", "64", "64"), "not inside")],
)
def test_cli_bad_boxes(sample, tmp_path, capsys, box, match):
    argv = _args(sample, tmp_path / "o")
    i = argv.index("--box")
    argv[i + 1 : i + 5] = box
    assert match in _bad(capsys, argv)


def test_cli_single_class_box(sample, tmp_path, capsys):
    argv = _args(sample, tmp_path / "o")
    argv[argv.index("--box") + 1 : argv.index("--box") + 3] = ["0", "0"]  # a corner with no nuclei painted
    assert "one class cannot be segmented" in _bad(capsys, argv)
    assert not (tmp_path / "o").exists()  # a bad prompt leaves no empty output folder behind


def test_cli_uniform_prompt_box(sample, tmp_path, capsys):
    y, x, h, w = sample["box"]
    blank = tifffile.imread(sample["paths"]["image"])
    blank[y : y + h, x : x + w] = 0
    tifffile.imwrite(tmp_path / "blank.tif", blank)
    argv = _args(sample, tmp_path / "o")
    argv[argv.index("--prompt-image") + 1] = str(tmp_path / "blank.tif")
    assert "uniform" in _bad(capsys, argv)
    assert not (tmp_path / "o").exists()


def test_cli_labels_of_another_size(sample, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((10, 10), np.uint8))
    argv = _args(sample, tmp_path / "o")
    argv[argv.index("--prompt-labels") + 1] = str(tmp_path / "small.tif")
    assert "must be the size of the prompt image" in _bad(capsys, argv)


def test_cli_stack_nan_and_zero_size(tmp_path, capsys, sample):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 64, 64), np.uint8), photometric="minisblack")
    nan = np.ones((64, 64), np.float32)
    nan[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    np.save(tmp_path / "zero.npy", np.zeros((0, 5)))
    tifffile.imwrite(tmp_path / "zero.tif", np.zeros((0, 5), np.uint8))
    p = sample["paths"]
    base = ["--prompt-image", str(p["image"]), "--prompt-labels", str(p["prompt_labels"]), "--box", "256", "416", "64",
            "64"]
    assert main(["segment", str(tmp_path / "stack.tif"), *base, "--out", str(tmp_path / "o1")]) == 0  # every plane
    assert tifffile.imread(tmp_path / "o1" / "stack.tif").shape == (3, 64, 64)
    capsys.readouterr()
    assert "NaN" in _bad(capsys, ["segment", str(tmp_path / "nan.tif"), *base, "--out", str(tmp_path / "o2")])
    err = _bad(capsys, ["segment", str(tmp_path / "zero.tif"), *base, "--out", str(tmp_path / "o3")])
    assert "empty" in err or "not an image" in err


def test_cli_corrupt_weights_and_missing_files(sample, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    assert "weights file" in _bad(capsys, _args(sample, tmp_path / "o", "--weights", str(bad)))
    argv = _args(sample, tmp_path / "o")
    argv[1] = str(tmp_path / "nope.tif")
    assert "does not exist" in _bad(capsys, argv)


def test_cli_unwritable_out_and_no_silent_overwrite(sample, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in _bad(capsys, _args(sample, blocker))
    assert "Cannot write into" in _bad(capsys, _args(sample, blocker / "sub"))
    out = tmp_path / "o"
    out.mkdir()
    (out / "nuclei.tif").write_text("precious")
    assert "--overwrite" in _bad(capsys, _args(sample, out))
    assert (out / "nuclei.tif").read_text() == "precious"  # nothing lost


def test_cli_cuda_absent(sample, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert "no CUDA GPU" in _bad(capsys, _args(sample, tmp_path / "o", "--device", "cuda"))


def test_cli_segment_instances(sample, tmp_path):
    """--instances on segment, as on predict: one id per nucleus (touching ones split by the watershed)."""
    assert main(_args(sample, tmp_path / "o", "--device", "cpu", "--instances", "watershed")) == 0
    inst = tifffile.imread(tmp_path / "o" / "nuclei.tif")
    assert main(_args(sample, tmp_path / "c", "--device", "cpu")) == 0
    classes = tifffile.imread(tmp_path / "c" / "nuclei.tif")
    assert ((inst > 0) == (classes > 0)).all() and len(np.unique(inst)) - 1 > 10
    from napari_fewcell.engine.core.files import read_labels_meta

    assert read_labels_meta(tmp_path / "o" / "nuclei.tif")["kind"] == "instances"


def test_cli_several_boxes(sample, tmp_path):
    """--box repeated: a prompt of several boxes; the label file's provenance lists them."""
    from napari_fewcell.engine.core.files import read_labels_meta

    p = sample["paths"]
    assert main(["segment", str(p["image"]), "--prompt-image", str(p["image"]), "--prompt-labels",
                 str(SAMPLE_TRUTH), "--box", "256", "416", "64", "64", "--box", "96", "96", "64", "64",
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    out = tifffile.imread(tmp_path / "o" / "nuclei.tif")
    assert dice_mean(out, sample["truth"]) > 0.8
    assert read_labels_meta(tmp_path / "o" / "nuclei.tif")["boxes"] == [[256, 416, 64, 64], [96, 96, 64, 64]]


def test_cli_corrected_result_joins_the_prompt(sample, tmp_path, capsys):
    """--corrected RESULT EDITED: the pixels changed outside the box are correction keys (provenance counts
    them); a result of another size gets one sentence and exit code 2."""
    from napari_fewcell.engine.core.files import read_labels_meta

    assert main(_args(sample, tmp_path / "a", "--device", "cpu", "--adapt", "none")) == 0
    result = tmp_path / "a" / "nuclei.tif"
    first = tifffile.imread(result)
    edited = first.copy()
    edited[:40, :40] = 0  # erased: background
    edited[300:306, 20:30] = 1  # painted: nucleus
    changed = int((edited != first).sum())
    assert changed > 0
    tifffile.imwrite(tmp_path / "edited.tif", edited)
    assert main(_args(sample, tmp_path / "b", "--device", "cpu", "--adapt", "none", "--corrected", str(result),
                      str(tmp_path / "edited.tif"))) == 0
    meta = read_labels_meta(tmp_path / "b" / "nuclei.tif")
    assert meta["corrections"]["strokes"] >= 1 and meta["corrections"]["stroke_pixels"] == changed
    tifffile.imwrite(tmp_path / "small.tif", edited[:100])
    assert main(_args(sample, tmp_path / "c", "--device", "cpu", "--corrected", str(result),
                      str(tmp_path / "small.tif"))) == 2
    err = capsys.readouterr().err
    assert "size" in err and "Traceback" not in err


def test_inputs_and_outputs_are_checked_before_any_work(sample, tmp_path, capsys):
    """Issue 22 item 1: an unreadable image or an existing output is one sentence before the prompt is checked,
    and a refused run creates nothing."""
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "new" / "out"
    args = ["segment", str(SAMPLE / "nuclei.tif"), str(bad), "--prompt-image", str(SAMPLE / "nuclei.tif"),
            "--prompt-labels", str(SAMPLE / "nuclei_prompt_labels.tif"), "--box", "256", "416", "64", "64",
            "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.tif" in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "checking the prompt" not in err  # refused before the prompt check
    assert not (tmp_path / "new").exists()  # nothing created
    out.mkdir(parents=True)
    (out / "nuclei.tif").write_bytes(b"an earlier result")
    assert main(args[:2] + args[3:]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "checking the prompt" not in err, err
    assert (out / "nuclei.tif").read_bytes() == b"an earlier result"
    twice = args[:2] + [str(SAMPLE / "nuclei.tif")] + args[3:-4] + ["--out", str(tmp_path / "two"), "--device", "cpu"]
    assert main(twice) == 2
    err = capsys.readouterr().err
    assert "Two input images are named 'nuclei'" in err and "checking the prompt" not in err, err
    assert not (tmp_path / "two").exists()


def test_labels_saved_as_0_255_are_binary_and_far_values_are_refused(sample, tmp_path, capsys):
    """Issue 22 item 3: a 0/255 mask is read as classes 0/1 (one stderr sentence; the output holds 0 and 1);
    values far above the number of classes get one sentence and exit 2."""
    lab = tifffile.imread(SAMPLE / "nuclei_prompt_labels.tif")
    mask = tmp_path / "mask255.tif"
    tifffile.imwrite(mask, (lab > 0).astype(np.uint8) * 255)
    args = ["segment", str(SAMPLE / "nuclei.tif"), "--prompt-image", str(SAMPLE / "nuclei.tif"), "--prompt-labels",
            str(mask), "--box", "256", "416", "64", "64", "--out", str(tmp_path / "o"), "--device", "cpu",
            "--adapt", "none"]
    assert main(args) == 0
    assert "holds only 0 and 255: read as a binary mask" in capsys.readouterr().err
    assert set(np.unique(tifffile.imread(tmp_path / "o" / "nuclei.tif")).tolist()) == {0, 1}
    far = tmp_path / "far.tif"
    odd = (lab > 0).astype(np.uint8)
    odd[256, 416] = 200
    tifffile.imwrite(far, odd)
    args[args.index(str(mask))] = str(far)
    args[args.index(str(tmp_path / "o"))] = str(tmp_path / "o2")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "class values must be 1..K" in err and err.count("\n") == 0 and "Traceback" not in err, err
    assert not (tmp_path / "o2").exists()


def test_one_overall_bar_with_the_time_left(capsys):
    """Issue 22 item 5: many units (images, blocks of a big image) draw one bar: units done out of all, the time
    spent and the time left; off a terminal, a line at the start, at most every 5 s, and at the end."""
    from napari_fewcell.cli.bar import Overall
    from napari_fewcell.engine.core.progress import Progress

    overall = Overall("labels", 4)
    for k in range(4):
        step = overall.unit(k, f"big.zarr block {k}")
        step(Progress(0, 2, "segmenting"))
        if k == 1:
            overall.last = -1e9  # as if 5 s had passed
            step(Progress(1, 2, "segmenting"))
        step(Progress(2, 2, "segmenting"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines  # start, the one due line, the end: not one bar per block
    assert lines[0].startswith("labels [") and "0/4 done (big.zarr block 0)" in lines[0]
    assert "1/4 done (big.zarr block 1)" in lines[1] and "s left" in lines[1]
    assert "4/4 done (big.zarr block 3)" in lines[2] and "left" not in lines[2]
