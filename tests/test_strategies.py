"""The Reptile (paper 003) and MoCo (paper 004) pre-training strategies on toy data: they learn, write
loadable weights, resume from a checkpoint exactly, and run from the CLI."""
import math

import numpy as np
import pytest
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.nets.unet import load_model
from napari_fewcell.engine.training import moco, pretrain
from napari_fewcell.engine.training.datasets import load_tasks
from napari_fewcell.engine.training.params import PretrainParams
from napari_fewcell.engine.training.pretrain import initial_model, pretrain_iter
from napari_fewcell.engine.training.reptile import other_task

from .pretraining import cut_and_resume, toy_set

#: torch on one thread in each test (restored after): a shared machine is far slower with two competing threads
pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks and crops: every run here takes a few seconds on one core
SMALL = dict(datasets=("a", "b"), base=4, embed_dim=8, crop=64, query_pixels=256, key_pixels=128)


@pytest.fixture
def toy(tmp_path):
    """Two toy data sets (so that a task n ≠ m of another set exists), blobs of two sizes."""
    toy_set(tmp_path, "a")
    toy_set(tmp_path, "b", seed=10, radius=4)
    return tmp_path


@pytest.fixture
def recorded(monkeypatch):
    """Every step's loss dict of the strategy that pretrain_iter builds, in order."""
    seen = []
    real = pretrain.strategy_class

    def recording(name):
        class Recording(real(name)):
            def step(self):
                seen.append(super().step())
                return seen[-1]

        return Recording

    monkeypatch.setattr(pretrain, "strategy_class", recording)
    return seen


def test_reptile_learns_keeps_batchnorm_affine_and_writes_loadable_weights(toy, recorded):
    p = PretrainParams(data=str(toy), strategy="reptile", steps=10, batch=2, inner_steps=2, **SMALL)
    run(pretrain_iter(p, toy / "w.pt"))
    assert [list(d) for d in recorded] == [["loss", "bce", "entropy", "distill"]] * 10
    losses = [d["loss"] for d in recorded]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert all(d["entropy"] > 0 and d["distill"] > 0 for d in recorded)
    model = load_model(toy / "w.pt")  # torch.load(weights_only=True) inside
    assert model.card["strategy"] == "reptile" and model.card["training_images"]["b"] == ["000", "001", "002"]
    bn = model.down[0][1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    assert bn.running_mean.abs().sum() > 0  # batch statistics were averaged into the running ones


def test_reptile_regularisers_use_another_data_set(toy):
    toy_set(toy, "c", extra="labels_other")
    tasks = load_tasks(toy, ["c", "a"])
    assert [t.name for t in tasks] == ["c", "c:labels_other", "a"]
    rng = np.random.default_rng(0)
    assert {other_task(tasks, 0, rng) for _ in range(20)} == {2}  # never the same images
    assert {other_task(tasks[:2], 0, rng) for _ in range(5)} == {1}  # one set only: its other task
    assert other_task(tasks[:1], 0, rng) == 0


def test_moco_alternates_learns_and_writes_loadable_weights(toy, recorded):
    p = PretrainParams(data=str(toy), strategy="moco", steps=40, batch=2, moco_every=2, moco_queue=16, lr=3e-3,
                       dice_weight=1.0, **SMALL)
    run(pretrain_iter(p, toy / "w.pt"))
    assert [list(d) for d in recorded] == [["loss", "moco", "episodic"]] * 40
    assert recorded[0]["moco"] == pytest.approx(math.log(17))  # not run yet: its chance level
    episodic = [d["loss"] for d in recorded[0::2]]  # steps 1, 3, … are episodic; 2, 4, … MoCo
    assert [d["episodic"] for d in recorded[0::2]] == episodic
    assert [d["moco"] for d in recorded[1::2]] == [d["loss"] for d in recorded[1::2]]
    assert np.mean(episodic[-5:]) < np.mean(episodic[:5])
    assert all(np.isfinite(d["loss"]) for d in recorded)
    model = load_model(toy / "w.pt")
    assert model.card["strategy"] == "moco" and set(model.card["final_losses"]) == {"loss", "moco", "episodic"}


def test_moco_step_lowers_the_infonce_of_a_batch(toy, monkeypatch):
    """MoCo steps on one fixed batch of views, against a fixed queue of real keys, lower its InfoNCE loss."""
    p = PretrainParams(data=str(toy), strategy="moco", steps=20, batch=4, moco_every=1, moco_queue=8, lr=1e-2,
                       **SMALL)
    torch.manual_seed(0)
    model = initial_model(p)
    s = moco.MoCo(model, load_tasks(toy, p.datasets), p, np.random.default_rng(0), torch.Generator().manual_seed(0))
    for _ in range(2):  # the queue holds real keys, not its random start
        s.enqueue(s.moco_loss()[1])
    assert s.ptr == 0
    views = moco.two_views(s.images, p.batch, p.crop, model.multiple, s.rng)
    assert views[0].shape == views[1].shape == (4, 3, 64, 64) and not torch.equal(*views)
    monkeypatch.setattr(moco, "two_views", lambda *args: views)
    monkeypatch.setattr(s, "enqueue", lambda keys: None)
    losses = [s.step()["moco"] for _ in range(12)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1


@pytest.mark.parametrize("strategy", ["reptile", "moco"])
def test_resumed_run_continues_from_the_checkpoint_step(toy, strategy):
    """A run cut after a checkpoint and resumed ends with the same weights as one run straight through."""
    p = PretrainParams(data=str(toy), strategy=strategy, steps=8, batch=1, inner_steps=2, moco_every=2,
                       moco_queue=3, checkpoint_minutes=1e-9, **SMALL)  # a checkpoint after every step
    state = cut_and_resume(p, toy)
    if strategy == "moco":
        assert state["strategy"]["count"] == state["step"] and state["strategy"]["queue"].shape == (3, 128)


@pytest.mark.parametrize("strategy", ["reptile", "moco"])
def test_pretrain_cli_strategy(toy, strategy):
    out = toy / f"{strategy}.pt"
    assert main(["pretrain", "--data", str(toy), "--datasets", "a", "b", "--strategy", strategy, "--steps", "2",
                 "--batch", "1", "--crop", "64", "--inner-steps", "1", "--moco-every", "2", "--out", str(out)]) == 0
    assert load_model(out).card["strategy"] == strategy
