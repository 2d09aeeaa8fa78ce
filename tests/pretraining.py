"""Helpers shared by the pre-training tests: toy data sets on disk, and the cut-and-resume check."""
from __future__ import annotations

import numpy as np
import tifffile
import torch

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.training.pretrain import pretrain_iter

from .conftest import blobs


def toy_set(root, name, n=3, seed=0, radius=7, extra=None, shape=(160, 160), test=True):
    """A toy data set of blob images; ``extra`` names a second label folder (the blobs' complement: another
    'structure'); ``test`` adds a test image that must never be read."""
    d = root / name
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    if extra:
        (d / extra).mkdir()
    rows = ["id,split"]
    for i in range(n):
        img, mask = blobs(shape, seed=seed + i, n=25, radius=radius)
        tifffile.imwrite(d / "images" / f"{i:03d}.tif", img)
        tifffile.imwrite(d / "labels" / f"{i:03d}.tif", mask)
        if extra:
            tifffile.imwrite(d / extra / f"{i:03d}.tif", (mask == 0).astype(np.uint8))
        rows.append(f"{i:03d},train")
    if test:
        rows.append("999,test")
    (d / "split.csv").write_text("\n".join(rows) + "\n")


def cut_and_resume(p, folder, cut_at: int = 5) -> dict:
    """Run ``p`` straight through; run it again, cut after step ``cut_at`` (the generator closed, as at a
    session's end) and resumed: the resumed run starts at the checkpoint's step and ends with the same
    weights. Returns the checkpoint's state."""
    run(pretrain_iter(p, folder / "full.pt"))
    gen = pretrain_iter(p, folder / "cut.pt", checkpoint=folder / "cut.ckpt")
    for progress in gen:
        if progress.done >= cut_at:
            break
    gen.close()
    state = torch.load(folder / "cut.ckpt", weights_only=True)
    assert cut_at <= state["step"] < p.steps
    seen = []
    run(pretrain_iter(p, folder / "resumed.pt", resume=folder / "cut.ckpt", checkpoint=folder / "cut.ckpt"),
        lambda pr: seen.append(pr.done))
    assert seen[0] == state["step"]  # continues from the checkpoint's step, not from 0
    full = torch.load(folder / "full.pt", weights_only=True)
    resumed = torch.load(folder / "resumed.pt", weights_only=True)
    assert resumed["card"]["resumed_at_steps"] == [state["step"]]
    for k, v in full["state_dict"].items():
        assert torch.allclose(v.float(), resumed["state_dict"][k].float(), atol=1e-5), k
    return state
