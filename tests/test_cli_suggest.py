"""`fewcell suggest IMAGE... --tile 256 --top 5 [--score ...] [--model ...] --json OUT.json` (the contract)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_fewcell.cli import main

from .conftest import blobs


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(2):
        img, _ = blobs((96, 128), seed=40 + i, n=10)
        paths.append(tmp_path / f"img{i}.tif")
        tifffile.imwrite(paths[-1], img)
    return paths


def _valid(rows, paths, tile, top, shapes):
    assert isinstance(rows, list) and len(rows) == top
    assert [r["rank"] for r in rows] == list(range(1, top + 1))
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for r in rows:
        assert set(r) >= {"rank", "image", "box", "score"}
        assert r["image"] in paths
        y, x, h, w = r["box"]
        H, W = shapes[r["image"]]
        assert (h, w) == (tile, tile) and 0 <= y <= H - h and 0 <= x <= W - w
    assert len({(r["image"], tuple(r["box"]), r.get("plane")) for r in rows}) == top


def test_suggest_contract_shipped_network(images, tmp_path):
    out = tmp_path / "s.json"
    paths = [str(p) for p in images]
    cmd = [sys.executable, "-m", "napari_fewcell.cli", "suggest", *paths, "--tile", "32", "--top", "5",
           "--json", str(out), "--device", "cpu", "--score", "consistency"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    _valid(rows, paths, 32, 5, {p: (96, 128) for p in paths})
    assert rows[0]["score_name"] == "consistency" and rows[0]["model"] == "shipped:fluo_nuclei"


@pytest.mark.parametrize("score", ["entropy", "mc-dropout", "random"])
def test_suggest_with_a_perceptron_model(images, tmp_path, score):
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.fewshot import PerceptronParams, fit_iter, support

    img, mask = blobs((64, 64), seed=3, n=6)
    model = tmp_path / "m.npz"
    run(fit_iter([support(img, mask)], PerceptronParams(max_pixels=4000))).save(model)
    out = tmp_path / f"{score}.json"
    paths = [str(p) for p in images]
    assert main(["suggest", *paths, "--tile", "64", "--top", "3", "--score", score, "--model", str(model),
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    _valid(rows, paths, 64, 3, {p: (96, 128) for p in paths})
    assert rows[0]["model"] == (None if score == "random" else str(model))  # what scored: random needs no model
    if score == "entropy":  # --model without --score: the model's consistency (paper 001), as before coverage
        assert main(["suggest", *paths, "--tile", "64", "--top", "3", "--model", str(model), "--json", str(out),
                     "--overwrite"]) == 0
        rows = json.loads(out.read_text())
        assert rows[0]["score_name"] == "consistency" and rows[0]["model"] == str(model)


def test_suggest_by_default_covers_the_kinds_of_tile_with_no_model(images, tmp_path):
    out = tmp_path / "c.json"
    paths = [str(p) for p in images]
    assert main(["suggest", *paths, "--tile", "32", "--top", "4", "--scale", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    _valid(rows, paths, 32, 4, {p: (96, 128) for p in paths})
    assert rows[0]["score_name"] == "coverage" and rows[0]["model"] is None and 0 < rows[0]["score"] <= 1


def test_suggest_stack_names_planes(tmp_path):
    stack = np.stack([blobs((64, 64), seed=s, n=5)[0] for s in range(3)])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    out = tmp_path / "s.json"
    assert main(["suggest", str(path), "--tile", "32", "--top", "12", "--score", "random", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    _valid(rows, [str(path)], 32, 12, {str(path): (64, 64)})
    assert sorted({r["plane"] for r in rows}) == [0, 1, 2]


def test_suggest_pretext_then_score(images, tmp_path):
    out = tmp_path / "p.json"
    assert main(["suggest", str(images[0]), "--tile", "32", "--top", "2", "--pretext", "--pretext-steps", "2",
                 "--network", "em_membrane", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["model"] == "shipped:em_membrane + pretext"


def test_suggest_bad_input_is_one_sentence(images, tmp_path, capsys):
    out = tmp_path / "bad.json"
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((96, 128, 3), np.uint8))
    cases = [
        (["--tile", "512"], "larger than"),
        (["--tile", "8"], "too small"),
        (["--tile", "64", "--top", "99"], "only 8 tiles"),
        (["--tile", "32", "--network", "nope"], "No shipped network"),
        (["--tile", "32", "--pretext", "--model", "m.npz"], "drop one"),
    ]
    for extra, text in cases:
        code = main(["suggest", str(images[0]), str(images[1]), "--json", str(out), *extra])
        err = capsys.readouterr().err
        assert code == 2 and text in err and "Traceback" not in err, (extra, err)
        assert len(err.strip().splitlines()) == 1
    assert main(["suggest", str(images[0]), str(rgb), "--tile", "32", "--json", str(out)]) == 2
    assert "channel counts" in capsys.readouterr().err
    assert not out.exists()
    out.write_text("keep me")
    assert main(["suggest", str(images[0]), "--tile", "32", "--score", "random", "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "keep me"
