import numpy as np
import tifffile
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.training.episodic import PretrainParams, pretrain_iter

from .conftest import blobs


def _dataset(root, name, n=3):
    d = root / name
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    rows = ["id,split"]
    for i in range(n):
        img, mask = blobs((160, 160), seed=i, n=25)
        tifffile.imwrite(d / "images" / f"{i:03d}.tif", img)
        tifffile.imwrite(d / "labels" / f"{i:03d}.tif", mask)
        rows.append(f"{i:03d},train")
    rows.append("999,test")  # a test image that must never be read
    (d / "split.csv").write_text("\n".join(rows) + "\n")


def test_pretrain_learns_and_writes_loadable_weights(tmp_path):
    _dataset(tmp_path, "toy")
    p = PretrainParams(data=str(tmp_path), datasets=("toy",), steps=30, batch=2, base=4, embed_dim=8,
                       query_pixels=512, key_pixels=256, dice_weight=1.0)
    losses = []
    run(pretrain_iter(p, tmp_path / "w.pt"), lambda pr: losses.append(float(pr.message.split()[-1])))
    model = load_model(tmp_path / "w.pt")  # torch.load(weights_only=True) inside
    assert model.card["training_images"] == {"toy": ["000", "001", "002"]}
    assert losses[-1] < losses[0]  # the running loss went down


def test_pretrain_cli_warm_start(tmp_path):
    _dataset(tmp_path, "toy")
    first = tmp_path / "a.pt"
    assert main(["pretrain", "--data", str(tmp_path), "--datasets", "toy", "--steps", "2", "--batch", "1",
                 "--out", str(first)]) == 0
    second = tmp_path / "b.pt"
    assert main(["pretrain", "--data", str(tmp_path), "--datasets", "toy=1", "--steps", "1", "--batch", "1",
                 "--init", str(first), "--out", str(second)]) == 0
    card = torch.load(second, weights_only=True)["card"]
    assert card["init_card"]["params"]["steps"] == 2
    assert np.isclose(card["params"]["dataset_weights"][0], 1.0)


def test_train_extractor_command_writes_a_loadable_msd(tmp_path):
    """`fewcell train-extractor` on a toy data set: train/validation split by image, best epoch kept."""
    from napari_fewcell.engine.nets.msd import load_msd

    _dataset(tmp_path, "toy", n=5)
    out = tmp_path / "msd_toy.pt"
    assert main(["train-extractor", "--data", str(tmp_path), "--dataset", "toy", "--name", "toy", "--out", str(out),
                 "--depth", "6", "--crop", "48", "--batch", "2", "--steps-per-epoch", "5", "--max-epochs", "3",
                 "--threads", "1", "--bce-weight", "1"]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "napari-fewcell/msd" and payload["name"] == "toy"
    net, name, card = load_msd(out)
    assert name == "toy" and net.config.depth == 6
    assert card["trained_on"] == "toy" and len(card["val_ids"]) == 1 and len(card["train_ids"]) == 4
    assert "999" not in card["train_ids"] + card["val_ids"]  # the test image is never read
    assert card["best_epoch"] == max(card["history"], key=lambda h: h["val_dice"])["epoch"]
    assert card["params"]["bce_weight"] == 1.0 and card["command"].startswith("fewcell train-extractor")
    assert main(["train-extractor", "--data", str(tmp_path), "--dataset", "toy", "--name", "toy",
                 "--out", str(out)]) == 2  # never overwritten without --overwrite
