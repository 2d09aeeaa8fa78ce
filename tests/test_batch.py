"""Big images block by block and many images as units of work (issue 13): the same labels as in memory, pixel for
pixel, from zarr, dask, TIFF and OME-Zarr inputs; outputs that appear only when complete; --resume; bad input."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import zarr

from napari_fewcell.cli import main
from napari_fewcell.engine.batch import finish, plan, run_unit
from napari_fewcell.engine.core import lazy
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.lazy import LazyImage, open_image
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import NetConfig, SegNet
from napari_fewcell.engine.partial import SegModel
from napari_fewcell.engine.prompt import PromptParams, Segmenter


@pytest.fixture(scope="module")
def big(sample):
    """A 700×900 image (2 × 2 blocks of 256-px tiles, blocks of 512) and a prompt adapted to it, with the in-memory
    labels."""
    img = np.tile(sample["image"], (2, 2))[:700, :900]
    seg = Segmenter(PromptParams(device="cpu", adapt="none", tile=256))
    prompt = seg.prepare_prompt(sample["image"], sample["prompt_labels"], sample["box"])
    return {"img": img, "seg": seg, "prompt": prompt, "ref": seg.segment(img, prompt)}


def to_zarr(path, arr, chunks):
    z = zarr.create_array(store=str(path), shape=arr.shape, chunks=chunks, dtype=arr.dtype)
    z[:] = arr
    return z


def lazy_labels(seg, prompt, source):
    image = source if isinstance(source, LazyImage) else open_image(source)
    out = np.zeros(image.shape, np.uint8)
    run(seg.segment_lazy_iter(image, prompt, out))
    return out


@pytest.mark.parametrize("chunks", [(300, 200), (700, 900)])
def test_zarr_input_gives_the_in_memory_labels(big, tmp_path, chunks):
    z = to_zarr(tmp_path / "in.zarr", big["img"], chunks)
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], z), big["ref"])
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], tmp_path / "in.zarr"), big["ref"])


def test_dask_tiff_and_ome_zarr_inputs(big, tmp_path, monkeypatch):
    from napari_fewcell.engine.core import lazy

    da = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], da.from_array(big["img"], chunks=512)),
                                  big["ref"])
    tifffile.imwrite(tmp_path / "tiled.tif", big["img"], tile=(256, 256))
    assert isinstance(lazy.open_array(tmp_path / "tiled.tif"), np.ndarray)  # a small TIFF is read whole, no zarr
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], tmp_path / "tiled.tif"), big["ref"])
    monkeypatch.setattr(lazy, "SMALL_TIFF", 0)  # a big one: its tiles on demand through tifffile's zarr store
    assert not isinstance(lazy.open_array(tmp_path / "tiled.tif"), np.ndarray)
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], tmp_path / "tiled.tif"), big["ref"])
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "1"}]}]
    group.create_array("0", shape=big["img"].shape, chunks=(512, 512), dtype=big["img"].dtype)[:] = big["img"]
    half = big["img"][::2, ::2]
    group.create_array("1", shape=half.shape, chunks=(512, 512), dtype=half.dtype)[:] = half
    np.testing.assert_array_equal(lazy_labels(big["seg"], big["prompt"], tmp_path / "ome.zarr"), big["ref"])


def test_a_network_reads_block_by_block_too(big, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = SegModel(SegNet(NetConfig(base=8, depth=2, embed_dim=3)), [0, 1, 2], device="cpu")
    z = to_zarr(tmp_path / "in.zarr", big["img"], (512, 512))
    out = np.zeros(big["img"].shape, np.uint8)
    run(model.predict_lazy_iter(z, out))
    np.testing.assert_array_equal(out, model.predict(big["img"]))


def test_chunks_that_cannot_be_read_a_tile_at_a_time(tmp_path, monkeypatch):
    tiny = zarr.create_array(store=str(tmp_path / "tiny.zarr"), shape=(64, 64), chunks=(1, 1), dtype="uint8")
    with pytest.raises(FewcellError, match="chunks of 1×1 pixels.*512–4096"):
        LazyImage(tiny)
    da = pytest.importorskip("dask.array")
    assert LazyImage(da.zeros((64, 64), chunks=1, dtype="uint8")).data.chunksize == (64, 64)  # rechunked
    whole = zarr.create_array(store=str(tmp_path / "whole.zarr"), shape=(64, 64), chunks=(64, 64), dtype="uint8")
    monkeypatch.setattr(lazy, "MAX_CHUNK_BYTES", 1000)
    assert isinstance(LazyImage(whole).data, np.ndarray)  # a small image in one huge chunk: read once, whole
    monkeypatch.setattr(lazy, "SMALL_IMAGE_BYTES", 1000)
    with pytest.raises(FewcellError, match="too large to read a tile at a time"):
        LazyImage(whole)


def test_zarr_paths_that_are_not_images(tmp_path):
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w").create_array("labels", shape=(8, 8), dtype="uint8")
    with pytest.raises(FewcellError, match="is a zarr group, not an image array.*labels"):
        open_image(tmp_path / "group.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FewcellError, match="not a zarr array"):
        open_image(tmp_path / "plain")
    to_zarr(tmp_path / "stack.zarr", np.zeros((3, 64, 64), np.uint8), (1, 64, 64))
    with pytest.raises(FewcellError, match="stacks are not supported"):
        open_image(tmp_path / "stack.zarr")


def test_big_output_appears_only_when_complete_and_resumes(big, tmp_path):
    to_zarr(tmp_path / "in.zarr", big["img"], (512, 512))
    model = big["seg"].blocks_for(big["prompt"])
    outputs, units = plan([str(tmp_path / "in.zarr")], tmp_path / "out", model)
    assert len(units) == 4 and all(u.block is not None for u in units)  # 2 × 2 blocks of 512
    for unit in units[:2]:
        run(run_unit(model, unit))
    assert not finish(outputs[0]) and not (tmp_path / "out" / "in.zarr").exists()  # 2 blocks missing
    outputs, units = plan([str(tmp_path / "in.zarr")], tmp_path / "out", model, resume=True)
    assert len(units) == 2  # the 2 finished blocks are skipped
    for unit in units:
        run(run_unit(model, unit))
    assert finish(outputs[0])
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out" / "in.zarr"))[:], big["ref"])
    assert sorted(os.listdir(tmp_path / "out")) == ["in.zarr"]  # no partial output, no markers left
    assert plan([str(tmp_path / "in.zarr")], tmp_path / "out", model, resume=True)[1] == []


def cli_args(sample, *extra):
    p = sample["paths"]
    return ["segment", *extra, "--prompt-image", str(p["image"]), "--prompt-labels", str(p["prompt_labels"]),
            "--box", *map(str, sample["box"]), "--device", "cpu", "--adapt", "none"]


@pytest.fixture(scope="module")
def cli_ref(sample, big):
    """A 1040×696 image (2 blocks of 512-px tiles from chunks of 512) and its in-memory labels, as the CLI makes
    them (tiles of 512)."""
    img = np.tile(sample["image"], (2, 1))
    seg = Segmenter(PromptParams(device="cpu", adapt="none"), model=big["seg"].model)
    prompt = seg.prepare_prompt(sample["image"], sample["prompt_labels"], sample["box"])
    return {"img": img, "ref": seg.segment(img, prompt), "small": seg.segment(sample["image"], prompt)}


def test_cli_zarr_folder_glob_tif_output_and_resume(cli_ref, sample, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    to_zarr(src / "big.zarr", cli_ref["img"], (512, 512))
    tifffile.imwrite(src / "a.tif", sample["image"])
    tifffile.imwrite(tmp_path / "b.tif", sample["image"][::-1])
    assert main(cli_args(sample, str(src), str(tmp_path / "b*.tif"), "--out", str(tmp_path / "o"))) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "o" / "big.zarr"))[:], cli_ref["ref"])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "a.tif"), cli_ref["small"])
    assert (tmp_path / "o" / "b.tif").is_file()
    stamps = {f: os.stat(tmp_path / "o" / f).st_mtime_ns for f in ("a.tif", "b.tif")}
    assert main(cli_args(sample, str(src), str(tmp_path / "b*.tif"), "--out", str(tmp_path / "o"), "--resume")) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert stamps == {f: os.stat(tmp_path / "o" / f).st_mtime_ns for f in ("a.tif", "b.tif")}
    assert main(cli_args(sample, str(src / "big.zarr"), "--out", str(tmp_path / "t"), "--out-format", "tif")) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "t" / "big.tif"), cli_ref["ref"])
    assert sorted(os.listdir(tmp_path / "t")) == ["big.tif"]


def bad(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewcell: error: ") and "Traceback" not in err and err.count("\n") == 1
    return err


def test_cli_bad_batch_input(big, sample, tmp_path, capsys, monkeypatch):
    from napari_fewcell.engine.batch import cluster

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1)  # the sentence, without waiting 8 s for a closed port
    o = str(tmp_path / "o")
    assert "matches no file" in bad(capsys, cli_args(sample, str(tmp_path / "nothing*.tif"), "--out", o))
    (tmp_path / "empty").mkdir()
    assert "holds no image file" in bad(capsys, cli_args(sample, str(tmp_path / "empty"), "--out", o))
    assert "could not reach a dask scheduler" in bad(
        capsys, cli_args(sample, str(sample["paths"]["image"]), "--out", o, "--scheduler", "tcp://127.0.0.1:9")
    ).lower()
    assert "1 or more" in bad(capsys, cli_args(sample, str(sample["paths"]["image"]), "--out", o, "--workers", "-1"))
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_array("x", shape=(64, 64), dtype="uint8")
    assert "zarr group" in bad(capsys, cli_args(sample, str(tmp_path / "g.zarr"), "--out", o))
    to_zarr(tmp_path / "z.zarr", big["img"], (512, 512))
    model = tmp_path / "net.pt"
    SegModel(SegNet(NetConfig(base=8, depth=2, embed_dim=3)), [0, 1], device="cpu").save(model)
    assert "--instances" in bad(capsys, ["predict", str(tmp_path / "z.zarr"), "--model", str(model), "--out", o,
                                         "--instances", "components", "--device", "cpu"])
    assert "would replace the image itself" in bad(capsys, cli_args(sample, str(tmp_path / "z.zarr"), "--out",
                                                                    str(tmp_path), "--overwrite"))
    assert (tmp_path / "z.zarr").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "Cannot write into" in bad(capsys, cli_args(sample, str(tmp_path / "z.zarr"), "--out", str(blocker / "o")))


def test_allocator_tuned_once_unless_asked_not_to():
    import platform
    import subprocess
    import sys

    code = ("from napari_fewcell.engine.core.allocator import tune_allocator as t; "
            "from napari_fewcell.engine.core.device import select_device; select_device('cpu'); print(t(), t())")
    env = {k: v for k, v in os.environ.items() if k != "FEWCELL_NO_MALLOPT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out.split() == ([str(glibc)] * 2)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "FEWCELL_NO_MALLOPT": "1"}).stdout
    assert out.split() == ["False", "False"]


def test_predict_a_big_stack_plane_by_plane(sample, tmp_path, monkeypatch, capsys):
    """A Z×H×W zarr or TIFF stack above the size limit is done plane by plane, block by block: the labels of each
    plane are the in-memory ones; `segment` takes stacks too."""
    torch = pytest.importorskip("torch")
    from napari_fewcell.engine.batch import units

    torch.manual_seed(0)
    model = SegModel(SegNet(NetConfig(base=8, depth=2, embed_dim=3)), [0, 1, 2], device="cpu")
    model.save(tmp_path / "net.pt")
    stack = np.stack([np.roll(sample["image"], 90 * z, axis=1)[:300, :400] for z in range(3)])
    to_zarr(tmp_path / "s.zarr", stack, (1, 128, 128))
    tifffile.imwrite(tmp_path / "t.tif", stack, photometric="minisblack")
    monkeypatch.setattr(units, "BIG_PIXELS", 1000)
    assert main(["predict", str(tmp_path / "s.zarr"), str(tmp_path / "t.tif"), "--model", str(tmp_path / "net.pt"),
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    ref = np.stack([model.predict(plane) for plane in stack])
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "o" / "s.zarr"))[:], ref)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "t.tif"), ref)
    assert sorted(os.listdir(tmp_path / "o")) == ["s.zarr", "t.tif"]
    assert main(cli_args(sample, str(tmp_path / "s.zarr"), "--out", str(tmp_path / "o2"))) == 0  # segment too
    assert zarr.open_array(str(tmp_path / "o2" / "s.zarr")).shape == (3, 300, 400)
