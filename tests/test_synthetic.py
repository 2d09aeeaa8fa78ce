"""The synthetic pre-training tasks (engine/training/synthetic.py): what each family draws, and how they join
the real tasks of ``fewcell pretrain --datasets``."""
import numpy as np
import pytest
import torch

from napari_fewcell.cli import main
from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.training import synthetic
from napari_fewcell.engine.training.bank import load_any
from napari_fewcell.engine.training.episodic import task_weights
from napari_fewcell.engine.training.params import PretrainParams
from napari_fewcell.engine.training.pretrain import pretrain_iter

from .pretraining import toy_set


@pytest.fixture
def small(monkeypatch):
    """Families of 3 images of 96² (the defaults are 48 of 256²: 20 s to draw)."""
    monkeypatch.setattr(synthetic, "IMAGES", 3)
    monkeypatch.setattr(synthetic, "SIZE", 96)


@pytest.mark.parametrize("family", list(synthetic.FAMILIES))
def test_each_family_draws_images_in_range_and_binary_labels_of_both_classes(family, small):
    task = synthetic.family_task(family, seed=0)
    assert task.name == f"synthetic:{family}" and task.set_name == "synthetic"
    for img, lab in zip(task.images, task.labels):
        assert img.shape == (3, 96, 96) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.01
        assert lab.shape == (96, 96) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1}
        assert 0.002 < lab.mean() < 0.98  # both classes are there; never the whole image
    again = synthetic.family_task(family, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(task.images, again.images))  # seeded
    other = synthetic.family_task(family, seed=1)
    assert not np.array_equal(task.labels[0], other.labels[0])


def test_the_image_shows_the_labels(small):
    """The class differs from the rest in the image (mean or texture), so a prompt can find it."""
    for family in ("blobs", "network", "fibres", "rings"):
        task = synthetic.family_task(family, seed=0)
        for img, lab in zip(task.images, task.labels):
            inside, outside = img[:, lab == 1].mean(), img[:, lab == 0].mean()
            assert abs(inside - outside) > 0.02, family


def test_names_choose_families_and_exclude_drops_them(small):
    assert [t.name for t in synthetic.synthetic_tasks(["synthetic"])] == [
        f"synthetic:{f}" for f in synthetic.FAMILIES]
    assert [t.name for t in synthetic.synthetic_tasks(["synthetic:rings", "synthetic"],
                                                      exclude=["synthetic:texture"])] == [
        "synthetic:rings", "synthetic:blobs", "synthetic:network", "synthetic:cells", "synthetic:fibres"]
    assert synthetic.synthetic_tasks(["synthetic"], exclude=["synthetic"]) == []
    with pytest.raises(FewcellError, match="no synthetic family 'spirals'"):
        synthetic.synthetic_tasks(["synthetic:spirals"])


def test_synthetic_tasks_join_the_real_ones_and_share_their_weight(tmp_path, small):
    toy_set(tmp_path, "toy")
    tasks = load_any(tmp_path, ["toy", "synthetic"])
    assert [t.name for t in tasks] == ["toy"] + [f"synthetic:{f}" for f in synthetic.FAMILIES]
    assert [t.name for t in load_any(tmp_path / "nowhere", ["synthetic:blobs"])] == ["synthetic:blobs"]
    p = PretrainParams(datasets=("toy", "synthetic"), dataset_weights=(1.0, 3.0))
    w = task_weights(tasks, p)
    assert np.isclose(w[0], 0.25) and np.allclose(w[1:], 0.75 / len(synthetic.FAMILIES))


def test_pretrain_trains_on_synthetic_tasks(tmp_path, small):
    toy_set(tmp_path, "toy")
    p = PretrainParams(data=str(tmp_path), datasets=("toy", "synthetic:network"), dataset_weights=(1.0, 2.0),
                       steps=2, batch=2, base=4, embed_dim=8, query_pixels=256, key_pixels=128)
    run(pretrain_iter(p, tmp_path / "w.pt"), lambda pr: None)
    card = torch.load(tmp_path / "w.pt", weights_only=True)["card"]
    assert set(card["training_images"]) == {"toy", "synthetic:network"}
    assert card["params"]["dataset_weights"] == [1.0, 2.0]


def test_pretrain_names_an_unknown_family_in_one_sentence(tmp_path, capsys, small):
    toy_set(tmp_path, "toy")
    code = main(["pretrain", "--data", str(tmp_path), "--datasets", "synthetic:spiral", "--steps", "1",
                 "--out", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "no synthetic family 'spiral'" in err and "Traceback" not in err
    assert not (tmp_path / "w.pt").exists()
