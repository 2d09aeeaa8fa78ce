"""Partial labels → pseudo-labels (stage 1), the stage-2 network, instances and label TIFFs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_fewcell.engine import (
    Cancelled,
    FewcellError,
    PseudoParams,
    SegModel,
    TrainParams,
    annotate,
    instance_labels,
    pseudolabel,
    pseudolabel_iter,
    run,
    train_iter,
)
from napari_fewcell.engine.core.augment import elastic
from napari_fewcell.engine.core.files import export_labels, read_labels_meta, write_labels_tif
from napari_fewcell.engine.nets.unet import EmbedNet, NetConfig, default_weights_path

from .conftest import blobs, dice_mean

BOX = (16, 16, 64, 64)


def chance(truth) -> float:
    """The best Dice a constant prediction (all background or all foreground) gets."""
    return max(dice_mean(np.zeros_like(truth), truth), dice_mean(np.ones_like(truth), truth))


def blob_set(n=3, shape=(112, 112)):
    return [blobs(shape, seed=10 + i, n=14) for i in range(n)]


def test_stage1_learns_from_random_init_and_keeps_the_annotation():
    """A randomly initialised network fine-tuned by Eq. 4 labels unannotated images above chance."""
    torch.manual_seed(0)
    pairs = blob_set()
    data = [annotate(pairs[0][0], pairs[0][1], [BOX], name="a")] + [annotate(im, name=f"u{i}") for i, (im, _) in
                                                                   enumerate(pairs[1:])]
    model = EmbedNet(NetConfig(base=8, embed_dim=16))
    result = run(pseudolabel_iter(data, PseudoParams(epochs=4, steps_per_epoch=8, batch=2, crop=64, lr=3e-3,
                                                     device="cpu"), model=model))
    assert len(result.labels) == 3 and list(result.classes) == [0, 1]
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4]  # 0 = before fine-tuning
    assert result.history[-1]["loss_prompt"] < result.history[1]["loss_prompt"]  # it learned the prompt pairs
    y, x, h, w = BOX
    assert np.array_equal(result.labels[0][y : y + h, x : x + w], pairs[0][1][y : y + h, x : x + w])
    for lab, (_, truth) in zip(result.labels[1:], pairs[1:]):
        assert lab.shape == truth.shape and lab.dtype == np.uint8
        assert dice_mean(lab, truth) > chance(truth) + 0.2


def test_pseudolabel_api_with_shipped_weights_and_mixed_images():
    """Images of different sizes and channel counts in one run, several boxes, fixes as annotation."""
    (a, ma), (b, mb) = blobs((128, 128), seed=1, n=16), blobs((96, 144), seed=2, n=12)
    rgb = np.stack([b, b // 2, b], -1)
    out = pseudolabel([a, rgb], [ma, None], [(0, 0, 48, 48), (64, 64, 48, 48)],
                      PseudoParams(epochs=1, steps_per_epoch=2, device="cpu"))
    assert out[1].shape == (96, 144)
    assert dice_mean(out[1], mb) > max(0.8, chance(mb))
    fixes = np.zeros(a.shape, bool)
    fixes[100:110, 0:10] = True
    d = annotate(a, ma, [(0, 0, 48, 48)], fixes=fixes)
    assert d.known.sum() == 48 * 48 + 100


def test_stage2_learns_saves_loads_and_predicts_the_same(tmp_path):
    pairs = blob_set(3, (96, 96))
    p = TrainParams(steps=60, batch=4, crop=64, base=8, init="scratch", device="cpu", rounds=1)
    model = run(train_iter([im for im, _ in pairs[:2]], [m for _, m in pairs[:2]], params=p,
                           class_names={1: "nucleus"}))
    test_img, truth = pairs[2]
    pred = model.predict(test_img)
    assert dice_mean(pred, truth) > max(0.8, chance(truth) + 0.2)
    path = model.save(tmp_path / "net.pt")
    card = json.loads((tmp_path / "net.json").read_text())
    assert card["format"] == "napari-fewcell/segnet" and card["class_names"] == {"1": "nucleus"}
    assert card["card"]["params"]["steps"] == 60
    again = SegModel.load(path, device="cpu")
    assert np.array_equal(again.predict(test_img), pred)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", "net.pt"]  # no temporary files


def test_stage2_can_start_from_the_embedding_weights(tmp_path):
    """TrainParams.init="pretrained": the stage-2 U-Net's body starts as the embedding network's (only the class
    head is new), it still learns, and the model file reloads; an unknown start gets one sentence."""
    from napari_fewcell.engine.partial.stage2 import new_segnet

    emb = torch.load(default_weights_path(), weights_only=True)["state_dict"]
    net = new_segnet(TrainParams(init="pretrained"), 2)
    body = {k: v for k, v in net.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(v, emb[k]) for k, v in body.items())
    assert net.head.out_channels == 2
    pairs = blob_set(3, (96, 96))
    p = TrainParams(steps=30, batch=4, crop=64, init="pretrained", device="cpu", rounds=1)
    model = run(train_iter([im for im, _ in pairs[:2]], [m for _, m in pairs[:2]], params=p))
    assert dice_mean(model.predict(pairs[2][0]), pairs[2][1]) > max(0.8, chance(pairs[2][1]) + 0.2)
    again = SegModel.load(model.save(tmp_path / "net.pt"), device="cpu")
    assert np.array_equal(again.predict(pairs[2][0]), model.predict(pairs[2][0]))
    with pytest.raises(FewcellError, match="Unknown start 'imagenet'"):
        TrainParams(init="imagenet").check()


def test_stage2_can_keep_the_moving_average_of_its_weights():
    """TrainParams.ema: the network kept is the exponential moving average of the weights after each step, its
    BatchNorm statistics included. With a decay near 1 the average stays at the first step's weights."""
    img, mask = blobs((64, 64), seed=5)

    def trained(steps, ema):
        p = TrainParams(steps=steps, batch=2, crop=32, base=8, init="scratch", device="cpu", ema=ema, rounds=1)
        return run(train_iter([img], [mask], params=p)).net.state_dict()

    first, last, average = trained(1, 0.0), trained(4, 0.0), trained(4, 1 - 1e-9)
    assert any(not torch.equal(first[k], last[k]) for k in first)  # training moved the weights
    assert all(torch.allclose(first[k].float(), average[k].float(), atol=1e-6) for k in first if "num_batches" not in k)
    with pytest.raises(FewcellError, match="moving-average decay must be at least 0 and below 1"):
        TrainParams(ema=1.0).check()


def test_elastic_warp_moves_image_and_labels_together():
    """core.augment.elastic: one smooth displacement warps a crop and its labels alike; sd 0 leaves them as they
    are; the labels keep their values (unknown, −1, included) and the same generator state gives the same warp."""
    yy, xx = np.mgrid[:96, :96]
    img = (0.5 + 0.5 * np.sin(yy / 7.0) * np.cos(xx / 9.0)).astype(np.float32)[None].repeat(3, 0)
    lab = (img[0] > 0.5).astype(np.int64)
    lab[:10] = -1
    same = elastic(img, lab, np.random.default_rng(0), 0.0)
    assert same[0] is img and same[1] is lab
    warped, wlab = elastic(img, lab, np.random.default_rng(1), 6.0)
    again, alab = elastic(img, lab, np.random.default_rng(1), 6.0)
    assert np.array_equal(warped, again) and np.array_equal(wlab, alab)
    assert warped.shape == img.shape and wlab.shape == lab.shape and set(np.unique(wlab)) <= {-1, 0, 1}
    assert (wlab != lab).mean() > 0.05  # it moved
    known = wlab >= 0
    assert ((warped[0] > 0.5) == (wlab == 1))[known].mean() > 0.97  # and the labels moved with the image
    with pytest.raises(FewcellError, match="elastic deformation must be between 0 and 64 pixels"):
        TrainParams(deform=-1).check()


def test_stage2_learns_with_the_elastic_warp():
    pairs = blob_set(3, (96, 96))
    p = TrainParams(steps=60, batch=4, crop=64, base=8, init="scratch", device="cpu", deform=4.0, rounds=1)
    model = run(train_iter([im for im, _ in pairs[:2]], [m for _, m in pairs[:2]], params=p))
    assert model.card["params"]["deform"] == 4.0
    assert dice_mean(model.predict(pairs[2][0]), pairs[2][1]) > max(0.8, chance(pairs[2][1]) + 0.2)


def test_self_training_rounds_learn_from_the_last_network_but_keep_the_kept_pixels():
    """TrainParams.rounds: each round after the first trains a new network on the last one's labels of the images,
    except where ``keep`` is true. Everything kept: round 2 trains on the same labels with the same seed, so it ends
    with round 1's weights; nothing kept: it learns from round 1's labels, so its weights differ."""
    from napari_fewcell.engine.partial.stage2 import relabel

    img, mask = blobs((64, 64), seed=7)
    noisy = mask.copy()
    noisy[np.random.default_rng(0).random(mask.shape) < 0.1] ^= 1  # labels with mistakes a network smooths out

    def trained(rounds, keep=None):
        p = TrainParams(steps=15, batch=4, crop=32, base=8, init="scratch", device="cpu", rounds=rounds)
        seen = []
        model = run(train_iter([img], [noisy], params=p, keep=keep), progress=seen.append)
        return model, seen

    one, _ = trained(1)
    kept, seen = trained(2, keep=[np.ones(mask.shape, bool)])
    free, _ = trained(2)
    assert kept.card["rounds"] == free.card["rounds"] == 2 and seen[-1].done == seen[-1].total == 30
    assert any("round 2 of 2: labelling the images" in q.message for q in seen)
    w1, wk, wf = (m.net.state_dict() for m in (one, kept, free))
    assert all(torch.equal(w1[k], wk[k]) for k in w1)
    assert any(not torch.equal(w1[k], wf[k]) for k in w1)
    half = np.zeros(mask.shape, bool)
    half[:, :32] = True
    targets = relabel(one, img, noisy, half)
    assert np.array_equal(targets[half], noisy[half]) and np.array_equal(targets[~half], one.predict(img)[~half])
    rare = noisy.copy()
    rare[30:32, 30:32] = 2  # a class of 4 pixels that 2 steps do not learn: no round on labels without it
    seen = []
    lost = run(train_iter([img], [rare], params=TrainParams(steps=2, batch=2, crop=32, base=8, init="scratch",
                                                               device="cpu", rounds=3)), progress=seen.append)
    assert lost.card["rounds"] == 1 and list(lost.classes) == [0, 1, 2]
    assert seen[-1].done == seen[-1].total == 6 and "stopped after round 1" in seen[-1].message  # a full bar
    with pytest.raises(FewcellError, match="mask of kept labels of training image 1 is 8×8"):
        run(train_iter([img], [noisy], params=TrainParams(steps=1, rounds=2), keep=[np.ones((8, 8), bool)]))
    with pytest.raises(FewcellError, match="training rounds must be a whole number from 1 to 5"):
        TrainParams(rounds=0).check()


def test_stage2_ignores_unknown_pixels_and_keeps_label_values():
    img, mask = blobs((96, 96), seed=4)
    lab = mask * 3  # class value 3, not 1
    known = np.zeros(mask.shape, bool)
    known[:, :48] = True
    confidence = np.ones(mask.shape, np.float16)
    confidence[48:] = 0.5  # stage 1 was unsure of the lower half: with min_confidence 0.8 it is left out too
    p = TrainParams(steps=40, batch=4, crop=48, base=8, init="scratch", device="cpu", min_confidence=0.8, rounds=1)
    model = run(train_iter([img], [lab], known=[known], params=p, confidence=[confidence]))
    assert model.card["known_pixels"] == 48 * 48
    assert list(model.classes) == [0, 3]
    assert set(np.unique(model.predict(img))) <= {0, 3}


def test_model_files_from_elsewhere_get_one_sentence(tmp_path):
    with pytest.raises(FewcellError, match="embedding network for prompt segmentation"):
        SegModel.load(default_weights_path())
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(FewcellError, match="not a napari-fewcell model"):
        SegModel.load(tmp_path / "junk.pt")
    torch.save({"format": "napari-fewcell/segnet", "version": 99}, tmp_path / "new.pt")
    with pytest.raises(FewcellError, match="version 99"):
        SegModel.load(tmp_path / "new.pt")
    torch.save({"format": "other-tool", "weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(FewcellError, match="not a napari-fewcell segmentation model"):
        SegModel.load(tmp_path / "other.pt")
    with pytest.raises(FewcellError, match="does not exist"):
        SegModel.load(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(boxes=[(0, 0, 64, 64), (32, 32, 64, 64)]), "overlap"),
        (dict(boxes=[(80, 80, 64, 64)]), "not inside"),
        (dict(labels=np.zeros((50, 50), np.uint8)), "labels of .* are 50×50"),
    ],
)
def test_bad_annotations(kwargs, match):
    img, mask = blobs((112, 112))
    args = dict(labels=mask, boxes=[BOX]) | kwargs
    with pytest.raises(FewcellError, match=match):
        annotate(img, args["labels"], args["boxes"])


def test_bad_sets():
    img, mask = blobs((112, 112))
    with pytest.raises(FewcellError, match="nothing to pseudo-label"):
        run(pseudolabel_iter([annotate(img, mask, [(0, 0, 112, 112)])], PseudoParams(epochs=0, device="cpu")))
    with pytest.raises(FewcellError, match="No image has an annotated box"):
        run(pseudolabel_iter([annotate(img)], PseudoParams(epochs=0, device="cpu")))
    with pytest.raises(FewcellError, match="only background"):
        run(pseudolabel_iter([annotate(img, np.zeros_like(mask), [BOX]), annotate(img)],
                             PseudoParams(epochs=0, device="cpu")))


def test_cancel_mid_epoch_stops_the_generator():
    pairs = blob_set(2)
    data = [annotate(pairs[0][0], pairs[0][1], [BOX]), annotate(pairs[1][0])]
    seen = []
    gen = pseudolabel_iter(data, PseudoParams(epochs=3, steps_per_epoch=5, batch=1, crop=64, device="cpu"))
    with pytest.raises(Cancelled):
        run(gen, seen.append, cancelled=lambda: len(seen) >= 3)
    assert len(seen) == 3 and seen[-1].total == 15 and "epoch 1/3" in seen[-1].message
    assert gen.gi_frame is None  # closed, not left running


def test_oneshot_fine_tuning_uses_the_whole_labelled_image():
    (a, ma), (b, mb) = blob_set(2)
    d = annotate(a, ma, [BOX], full=True)
    assert d.known.all()
    out = run(pseudolabel_iter([d, annotate(b)], PseudoParams(epochs=1, steps_per_epoch=2, device="cpu")))
    assert dice_mean(out.labels[1], mb) > max(0.8, chance(mb))


def test_labels_tiff_roundtrip_stack_and_metadata(tmp_path):
    stack = np.zeros((3, 20, 30), np.uint16)
    stack[1, 5:10, 5:15] = 2
    path = write_labels_tif(tmp_path / "s.tif", stack, source="cells.tif", classes={2: "nucleus"})
    back = tifffile.imread(path)
    assert back.shape == (3, 20, 30) and back.dtype == np.uint8 and np.array_equal(back, stack)
    meta = read_labels_meta(path)
    assert meta["source"] == "cells.tif" and meta["classes"] == {"2": "nucleus"}
    big = np.full((4, 4), 300, np.int64)
    assert tifffile.imread(write_labels_tif(tmp_path / "b.tif", big)).dtype == np.uint16
    with pytest.raises(FewcellError, match="already exists"):
        write_labels_tif(path, stack)


def test_export_checks_every_target_before_writing(tmp_path):
    a = np.ones((8, 8), np.uint8)
    (tmp_path / "second.tif").write_bytes(b"keep me")
    with pytest.raises(FewcellError, match="second.tif already exists"):
        export_labels(tmp_path, [("first", a, "x"), ("second", a, "y")])
    assert not (tmp_path / "first.tif").exists() and (tmp_path / "second.tif").read_bytes() == b"keep me"
    written = export_labels(tmp_path, [("first", a, "x"), ("second", a, "y")], overwrite=True, instances="components")
    assert [p.name for p in written] == ["first.tif", "second.tif"]
    assert read_labels_meta(written[1])["kind"] == "instances"


def test_instance_labels_split_objects():
    lab = np.zeros((40, 60), np.uint8)
    yy, xx = np.mgrid[:40, :60]
    lab[(yy - 20) ** 2 + (xx - 18) ** 2 <= 100] = 1
    lab[(yy - 20) ** 2 + (xx - 34) ** 2 <= 100] = 1  # touching the first disk
    lab[2:6, 50:58] = 2
    comps = instance_labels(lab)
    assert comps.max() == 2  # the touching disks are one component; the class-2 box another
    ws = instance_labels(lab, "watershed")
    assert ws.max() == 3 and len(np.unique(ws[lab == 1])) == 2
    stack = instance_labels(np.stack([lab, lab]))
    assert stack.max() == 4 and set(np.unique(stack[1])) == {0, 3, 4}
    with pytest.raises(FewcellError, match="Unknown instance method"):
        instance_labels(lab, "magic")


def test_keep_best_epoch_by_held_out_box_dice():
    """With three boxes, one is held out of fine-tuning and scores every epoch; the best epoch is kept."""
    (a, ma), (b, _) = blob_set(2)
    data = [annotate(a, ma, [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]), annotate(b)]
    res = run(pseudolabel_iter(data, PseudoParams(epochs=2, steps_per_epoch=2, batch=1, crop=64, device="cpu")))
    dices = [h["box_dice"] for h in res.history]
    assert [h["epoch"] for h in res.history] == [0, 1, 2] and all(0 <= d <= 1 for d in dices)
    kept = [h for h in res.history if h["kept"]]
    assert len(kept) == 1 and kept[0]["box_dice"] == max(dices)
    two = run(pseudolabel_iter([annotate(a, ma, [(0, 0, 48, 48), (60, 60, 48, 48)]), annotate(b)],
                               PseudoParams(epochs=1, steps_per_epoch=1, batch=1, crop=64, device="cpu")))
    assert [h["box_dice"] for h in two.history] == [None, None]  # too few boxes to hold one out
    assert two.history[-1]["kept"]


def test_fine_tuning_stops_at_a_plateau_of_the_held_out_boxes():
    """Issue 24 item 3: with a learning rate too small to change anything, the held-out Dice never improves, so
    stage 1 stops after `patience` epochs and keeps the pre-trained network; patience 0 runs every epoch."""
    (a, ma), (b, _) = blob_set(2)
    data = [annotate(a, ma, [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]), annotate(b)]
    flat = PseudoParams(epochs=6, steps_per_epoch=1, batch=1, crop=64, lr=1e-30, patience=2, device="cpu")
    res = run(pseudolabel_iter(data, flat))
    assert [h["epoch"] for h in res.history] == [0, 1, 2] and res.history[0]["kept"]
    assert res.labeller == {"network": "pre-trained", "path": "auto", "check": {},  # nothing else to weigh
                            "why": "no fine-tuning epoch bettered the held-out boxes", "estimates": {}}
    every = run(pseudolabel_iter(data, PseudoParams(**{**flat.__dict__, "patience": 0, "epochs": 3})))
    assert [h["epoch"] for h in every.history] == [0, 1, 2, 3]


def test_validation_box_is_never_trained_on():
    from napari_fewcell.engine.partial.pseudo import _Trainer

    (a, ma), (b, _) = blob_set(2)
    boxes = [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]
    data = [annotate(a, ma, boxes), annotate(b)]
    tr = _Trainer(data, np.array([0, 1]), PseudoParams(device="cpu"), EmbedNet(NetConfig(base=8)), torch.device("cpu"))
    assert len(tr.val) == 1 and tr.val[0] not in tr.boxes and tr.val[0] not in tr.prompts
    i, (y, x, h, w) = tr.val[0]
    assert (tr.index[i][y : y + h, x : x + w] == -1).all()  # no supervised loss on its pixels


def test_a_worse_fine_tuned_network_never_labels_the_images():
    """Issue 24 item 2: the network and path that label the images are chosen on boxes held out of fine-tuning,
    through the labelling path itself. A fine-tuning that wrecks the network (a huge learning rate, last epoch
    kept) loses to the pre-trained network, and the pseudo-labels are then one-shot's from the same boxes."""
    from napari_fewcell.engine import PromptParams, Segmenter
    from napari_fewcell.engine.partial.choice import describe_labeller

    (a, ma), (b, _) = blob_set(2)
    boxes = [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]
    data = [annotate(a, ma, boxes), annotate(b)]
    wreck = PseudoParams(epochs=2, steps_per_epoch=3, batch=1, crop=64, lr=0.05, keep_best=False, device="cpu")
    res = run(pseudolabel_iter(data, wreck))
    assert set(res.labeller["check"]) == {"pre-trained/auto", "fine-tuned/none"}
    assert res.labeller["network"] == "pre-trained" and res.labeller["path"] == "auto"
    assert res.labeller["check"]["pre-trained/auto"] > res.labeller["check"]["fine-tuned/none"]
    assert describe_labeller(res.labeller).startswith("Labelled with the pre-trained network (auto): held-out")
    seg = Segmenter(PromptParams(device="cpu"))
    prompt = seg.prepare_prompt_boxes(a, ma, boxes)
    for image, labels, known in ((a, res.labels[0], data[0].known), (b, res.labels[1], data[1].known)):
        one_shot = seg.segment(image, prompt)
        assert np.array_equal(labels[~known], one_shot[~known])


def test_a_diverging_fine_tuning_stops_and_labels_with_a_finite_network():
    """A learning rate far too high makes the loss NaN: stage 1 stops, goes back to the last whole epoch, says so,
    and still labels every image."""
    from napari_fewcell.engine.partial import describe_epoch

    (a, ma), (b, _) = blob_set(2)
    data = [annotate(a, ma, [(0, 0, 48, 48), (60, 60, 48, 48), (0, 60, 48, 48)]), annotate(b)]
    res = run(pseudolabel_iter(data, PseudoParams(epochs=3, steps_per_epoch=4, batch=1, crop=64, lr=1e8,
                                                  device="cpu")))
    assert any(h.get("diverged_after") for h in res.history) and len(res.history) < 4
    assert "diverged" in " ".join(describe_epoch(h) for h in res.history)
    assert all(torch.isfinite(v).all() for v in res.model.state_dict().values())
    assert all(lab.shape == a.shape for lab in res.labels)
