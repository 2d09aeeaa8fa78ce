"""The crop bank and pre-training at scale: the bank holds the train splits (never a test image), `fewcell pretrain
--data BANK.npz --sampler torch` trains from it, and a wall-time budget ends a run with its schedule run down."""
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from napari_fewcell.cli import main
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.training.bank import build_bank, load_any, read_meta
from napari_fewcell.engine.training.episodic import Episodic, task_weights
from napari_fewcell.engine.training.params import PretrainParams
from napari_fewcell.engine.training.pretrain import pretrain_iter
from napari_fewcell.engine.training.torch_episodes import TorchEpisodes

from .pretraining import cut_and_resume, toy_set


def bank_of(tmp_path, **kw):
    toy_set(tmp_path, "toy", extra="labels_other", shape=(160, 200))
    toy_set(tmp_path, "small", n=2, shape=(96, 96))
    bank = tmp_path / "bank.npz"
    return bank, build_bank(tmp_path, bank, ["toy", "small"], **kw)


def test_bank_holds_the_train_split_as_the_folders_give_it(tmp_path):
    bank, meta = bank_of(tmp_path, window=128, budget_mpx=0.05)
    assert read_meta(bank)["sets"]["toy"]["folders"] == ["labels", "labels_other"]
    assert set(meta["sets"]["toy"]["ids"]) == {"000", "001", "002"}  # never the test image 999
    assert meta["sets"]["small"]["ids"] == ["000", "001"]  # images under the window are kept whole, once
    tasks = load_any(bank, ["toy", "small"])
    assert [t.name for t in tasks] == ["toy", "toy:labels_other", "small"]
    folders = load_any(tmp_path, ["small"])[0]
    for a, b in zip(tasks[2].images, folders.images):  # same normalisation as the folders, to uint8 precision
        assert a.shape == b.shape and np.abs(a - b).max() <= 1 / 255 + 1e-6
    assert all(lab.shape == (128, 128) for lab in tasks[0].labels)  # windows of a larger image
    assert (tasks[0].labels[0] + tasks[1].labels[0] == 1).all()  # each window keeps both label folders
    assert [t.name for t in load_any(bank, ["toy", "small"], exclude=["toy"])] == ["small"]
    assert [t.name for t in load_any(bank, ["toy"], exclude=["toy:labels_other"])] == ["toy"]


def test_torch_sampler_gives_episodes_that_match_their_labels(tmp_path):
    """Batches have the numpy sampler's shapes; without jitter an episode's query is its image's pixels under its
    labels (a blob image: foreground brighter), whatever the scale drawn."""
    bank, _ = bank_of(tmp_path, window=160, budget_mpx=0.1)
    tasks = load_any(bank, ["toy"])
    p = PretrainParams(data=str(bank), datasets=("toy",), sampler="torch", scale=(0.5, 2.0), batch=6, crop=64,
                       invert_p=0.0)
    s = TorchEpisodes(tasks, task_weights(tasks, p), p, np.random.default_rng(0), torch.device("cpu"))
    qi, ql, pi, pl = s.batch()
    assert qi.shape == (6, 3, 64, 64) and ql.shape == (6, 64, 64) and pi.shape == (6, 3, 128, 128)
    assert pl.shape == (6, 64, 64) and ql.dtype == torch.uint8 and set(ql.unique().tolist()) <= {0, 1}
    for k in range(6):
        y = ql[k].bool()
        if 0 < y.float().mean() < 1:  # labels and image cut and turned together
            fg, bg = qi[k, 0][y].mean(), qi[k, 0][~y].mean()
            assert (fg - bg).abs() > 0.1


def reference_cut(image: np.ndarray, labels: np.ndarray, y, x, r, size, rot, flip):
    """One episode's crop as the sampler cut it episode by episode until 2026-12-06: uint8 pixels, F.interpolate
    (bilinear, antialiased where the crop shrinks; nearest for labels), then torch.rot90 and flip."""
    u8 = torch.from_numpy(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    img = u8[:, y : y + r, x : x + r].float()[None] / 255
    lab = torch.from_numpy(labels[y : y + r, x : x + r].astype(np.float32))[None, None]
    if r != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=r > size)
        lab = F.interpolate(lab, size=(size, size), mode="nearest")
    img, lab = torch.rot90(img[0], rot, (1, 2)), torch.rot90(lab[0, 0], rot, (0, 1))
    return (img.flip(2), lab.flip(1)) if flip else (img, lab)


class OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def test_torch_sampler_cuts_a_batch_at_once_as_it_cut_each_episode(tmp_path):
    """The whole batch is cut, rescaled and turned by a fixed number of tensor operations (on a shared GPU, cuts
    made episode by episode were the bottleneck), and every crop equals the per-episode cut (F.interpolate,
    antialiased where it shrinks, then rot90 and flip), growing or shrinking."""
    bank, _ = bank_of(tmp_path, window=160, budget_mpx=0.1)
    tasks = load_any(bank, ["toy", "small"])
    p = PretrainParams(data=str(bank), datasets=("toy", "small"), sampler="torch", scale=(0.5, 2.0), crop=48)
    s = TorchEpisodes(tasks, task_weights(tasks, p), p, np.random.default_rng(1), torch.device("cpu"))
    draws = [s.draw() for _ in range(24)]
    for which, image, turn, size in (("query", "b", 0, 48), ("prompt", "a", 1, 128)):
        crops = np.array([[*s.where[d["s"]][d[image]], *d[which], d["rot"][turn] * 2 + d["flip"][turn]]
                          for d in draws], np.int64)
        img, lab = s.cut(crops, size)
        assert {d[which][2] > size for d in draws} == {True, False}  # crops that shrink and crops that grow
        for k, d in enumerate(draws):
            t = tasks[d["s"]]
            ref_img, ref_lab = reference_cut(t.images[d[image]], t.labels[d[image]], *d[which], size,
                                             d["rot"][turn], d["flip"][turn])
            assert torch.allclose(img[k], ref_img, atol=1e-5) and torch.equal(lab[k], ref_lab.to(torch.uint8))
    crops = np.array([[*s.where[d["s"]][d["a"]], *d["prompt"], 3] for d in draws], np.int64)
    plain = s.cut(crops, 128)[0]
    with torch.autocast("cpu", torch.bfloat16):  # a bfloat16 training step does not lower the crops' precision
        under = s.cut(crops, 128)[0]
    assert under.dtype == torch.float32 and torch.equal(under, plain)
    counts = []
    for n in (2, 16):
        with OpCount() as c:
            s.batch(n)
        counts.append(c.n)
    assert counts[0] == counts[1]


def test_pretrain_from_a_bank_with_a_wall_budget(tmp_path):
    bank, _ = bank_of(tmp_path, window=160, budget_mpx=0.1)
    out = tmp_path / "w.pt"
    assert main(["pretrain", "--data", str(bank), "--datasets", "toy", "small", "--sampler", "torch",
                 "--scale", "0.7", "1.4", "--steps", "100000", "--batch", "2", "--crop", "64",
                 "--wall-minutes", "0.02", "--out", str(out)]) == 0
    card = torch.load(out, weights_only=True)["card"]
    assert 1 <= card["steps_done"] < 100000 and card["train_seconds"] >= 1.2
    assert card["training_images"]["toy"] == ["000", "001", "002"] and card["device"] == "cpu"
    assert card["params"]["scale"] == [0.7, 1.4]


def test_time_schedule_warms_up_and_decays():
    p = PretrainParams(wall_minutes=1.0, lr=1e-3)
    e = Episodic.__new__(Episodic)
    e.p = p
    lrs = [e.lr_at(f) for f in np.linspace(0, 1, 101)]
    assert lrs[0] < 1e-4 and max(lrs) == max(lrs[4:7]) and lrs[-1] == 1e-5
    assert all(a >= b for a, b in zip(lrs[6:], lrs[7:]))


def test_torch_sampler_run_resumes_to_the_same_weights(tmp_path):
    bank, _ = bank_of(tmp_path, window=160, budget_mpx=0.1)
    p = PretrainParams(data=str(bank), datasets=("toy",), sampler="torch", scale=(0.8, 1.25), steps=10, batch=1,
                       base=4, embed_dim=8, crop=64, query_pixels=256, key_pixels=128, checkpoint_minutes=1e-9)
    cut_and_resume(p, tmp_path)


def test_bf16_forward_pass_trains_and_differs_from_float32(tmp_path):
    """--bf16 runs the forward pass under bfloat16 autocast: finite weights, recorded on the card, and not the
    float32 run's weights (so the option is in effect); a bf16 run resumes to the same weights too."""
    bank, _ = bank_of(tmp_path, window=160, budget_mpx=0.1)
    p = PretrainParams(data=str(bank), datasets=("toy",), sampler="torch", steps=6, batch=1, base=4, embed_dim=8,
                       crop=64, query_pixels=256, key_pixels=128, checkpoint_minutes=1e-9, bf16=True)
    cut_and_resume(p, tmp_path, cut_at=3)
    run(pretrain_iter(dataclasses.replace(p, bf16=False), tmp_path / "f32.pt"))
    bf, f32 = (torch.load(tmp_path / n, weights_only=True) for n in ("full.pt", "f32.pt"))
    assert bf["card"]["params"]["bf16"] is True and f32["card"]["params"]["bf16"] is False
    assert all(torch.isfinite(v.float()).all() for v in bf["state_dict"].values())
    assert any(not torch.equal(v, f32["state_dict"][k]) for k, v in bf["state_dict"].items())


def test_bank_and_sampler_bad_input(tmp_path, capsys):
    toy_set(tmp_path, "toy")

    def fails(args, *words):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
        for w in words:
            assert w in err, err

    fails(["pretrain-bank", "--data", str(tmp_path), "--sets", "toy", "--out", str(tmp_path / "b.tif")], ".npz")
    fails(["pretrain", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "w.pt")], "does not exist")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    fails(["pretrain", "--data", str(tmp_path / "junk.npz"), "--out", str(tmp_path / "w.pt")], "not a crop bank")
    fails(["pretrain", "--data", str(tmp_path), "--datasets", "toy", "--scale", "0.5", "2",
           "--out", str(tmp_path / "w.pt")], "--sampler torch")
    fails(["pretrain", "--data", str(tmp_path), "--datasets", "toy", "--strategy", "moco", "--device", "cuda",
           "--out", str(tmp_path / "w.pt")], "episodic strategy")
    assert main(["pretrain-bank", "--data", str(tmp_path), "--sets", "toy", "--out", str(tmp_path / "b.npz")]) == 0
    assert "3 windows of 1 sets" in capsys.readouterr().err
    fails(["pretrain", "--data", str(tmp_path / "b.npz"), "--datasets", "other", "--out", str(tmp_path / "w.pt")],
          "holds no set 'other'")
    assert not (tmp_path / "w.pt").exists()
