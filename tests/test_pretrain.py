import numpy as np
import tifffile
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.training.params import PretrainParams
from napari_fewcell.engine.training.pretrain import pretrain_iter

from .pretraining import cut_and_resume, toy_set


def loss_of(progress) -> float:
    """The running loss in a pre-training progress message ('loss 0.1234 …'); nan before the first step."""
    words = progress.message.split()
    return float(words[words.index("loss") + 1]) if "loss" in words else float("nan")


def test_pretrain_learns_and_writes_loadable_weights(tmp_path):
    toy_set(tmp_path, "toy")
    p = PretrainParams(data=str(tmp_path), datasets=("toy",), steps=30, batch=2, base=4, embed_dim=8,
                       query_pixels=512, key_pixels=256, dice_weight=1.0)
    losses = []
    run(pretrain_iter(p, tmp_path / "w.pt"), lambda pr: losses.append(loss_of(pr)))
    model = load_model(tmp_path / "w.pt")  # torch.load(weights_only=True) inside
    assert model.card["training_images"] == {"toy": ["000", "001", "002"]}
    losses = [v for v in losses if v == v]
    assert losses[-1] < losses[0]  # the running loss went down


def test_pretrain_cli_warm_start(tmp_path):
    toy_set(tmp_path, "toy")
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

    toy_set(tmp_path, "toy", n=5)
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


def test_tasks_extra_label_folders_and_exclusion(tmp_path):
    """A set with two label folders gives two tasks on the same images; --exclude drops a set or one folder."""
    from napari_fewcell.engine.training.datasets import load_tasks

    toy_set(tmp_path, "toy", extra="labels_other")
    toy_set(tmp_path, "second")
    tasks = load_tasks(tmp_path, ["toy", "second"])
    assert [t.name for t in tasks] == ["toy", "toy:labels_other", "second"]
    assert tasks[0].images is tasks[1].images  # read once
    assert (tasks[0].labels[0] + tasks[1].labels[0] == 1).all()
    assert [t.name for t in load_tasks(tmp_path, ["toy", "second"], exclude=["second"])] == ["toy", "toy:labels_other"]
    assert [t.name for t in load_tasks(tmp_path, ["toy"], exclude=["toy:labels_other"])] == ["toy"]
    assert [t.name for t in load_tasks(tmp_path, ["toy:labels_other"])] == ["toy:labels_other"]


def test_resumed_run_continues_from_the_checkpoint_step(tmp_path):
    """A run cut after its first checkpoint and resumed ends with the same weights as one run straight through."""
    toy_set(tmp_path, "toy")
    p = PretrainParams(data=str(tmp_path), datasets=("toy",), steps=12, batch=1, base=4, embed_dim=8, crop=64,
                       query_pixels=256, key_pixels=128, checkpoint_minutes=1e-9)  # a checkpoint after every step
    cut_and_resume(p, tmp_path)


def test_pretrain_bad_input_one_sentence_each(tmp_path, capsys):
    toy_set(tmp_path, "toy")
    base = ["pretrain", "--data", str(tmp_path), "--steps", "1", "--batch", "1", "--out", str(tmp_path / "w.pt")]

    def fails(args, *words):
        assert main(base + args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
        for w in words:
            assert w in err, err

    fails(["--datasets", "toy", "missing_set"], "No data set 'missing_set'")
    (tmp_path / "nolabels" / "images").mkdir(parents=True)
    (tmp_path / "nolabels" / "split.csv").write_text("id,split\n000,train\n")
    fails(["--datasets", "nolabels"], "has no labels folder")
    toy_set(tmp_path, "wrong")
    tifffile.imwrite(tmp_path / "wrong" / "labels" / "001.tif", np.zeros((10, 12), np.uint8))
    fails(["--datasets", "wrong"], "are 10×12 but the image is 160×160")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint at all")
    fails(["--datasets", "toy", "--resume", str(tmp_path / "bad.ckpt")], "not a readable pre-training checkpoint")
    fails(["--datasets", "toy", "--exclude", "toy"], "No data set is left")


def test_a_stopped_run_checkpoints_its_last_finished_step(tmp_path):
    """Closing the generator (Cancel, or SIGTERM in the CLI) writes a checkpoint of the last finished step."""
    toy_set(tmp_path, "toy")
    p = PretrainParams(data=str(tmp_path), datasets=("toy",), steps=20, batch=1, base=4, embed_dim=8, crop=64,
                       query_pixels=256, key_pixels=128, checkpoint_minutes=60)  # no timed checkpoint in this test
    gen = pretrain_iter(p, tmp_path / "w.pt")
    for progress in gen:
        if progress.done == 4:
            break
    gen.close()
    assert torch.load(tmp_path / "w.pt.ckpt", weights_only=True)["step"] == 4
    assert not (tmp_path / "w.pt").exists()  # no weights file for an unfinished run


def test_cpu_budget_stops_the_run_and_the_card_says_when(tmp_path):
    """--cpu-minutes ends a run once its training loop has used that much CPU time: fewer steps than --steps,
    the weights written, and the card records the steps done and the CPU seconds used (the budget comparison's
    evidence). The checkpoint holds the last step, so resuming it does no further step."""
    toy_set(tmp_path, "toy")
    out = tmp_path / "w.pt"
    assert main(["pretrain", "--data", str(tmp_path), "--datasets", "toy", "--steps", "100000", "--batch", "1",
                 "--crop", "64", "--cpu-minutes", "0.005", "--out", str(out)]) == 0
    card = torch.load(out, weights_only=True)["card"]
    assert 1 <= card["steps_done"] < 100000
    assert card["cpu_seconds"] >= 0.3  # 0.005 min
    assert card["params"]["cpu_minutes"] == 0.005
    state = torch.load(str(out) + ".ckpt", weights_only=True)
    assert state["step"] == card["steps_done"]
