import numpy as np
import pytest
import torch

import napari_fewcell
from napari_fewcell.engine import FewcellError, PromptParams, Segmenter
from napari_fewcell.engine.nets.unet import EmbedNet, NetConfig, load_model, save_weights

from .conftest import blobs, dice_mean


@pytest.fixture(scope="module")
def seg():
    return Segmenter(PromptParams(device="cpu"))


def test_network_gives_unit_embeddings_at_full_resolution():
    net = EmbedNet(NetConfig(base=4, embed_dim=8)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 48, 40))
    assert out.shape == (2, 8, 48, 40)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 48, 40))


def test_shipped_weights_load_with_weights_only():
    model = load_model()
    assert model.config.embed_dim > 0
    assert isinstance(model.card, dict)


def test_shipped_weights_segment_sample_nuclei(seg, sample):
    prompt = seg.prepare_prompt(sample["image"], sample["prompt_labels"], sample["box"])
    out = seg.segment(sample["image"], prompt)
    assert out.shape == sample["image"].shape and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 1}
    # the whole image from one 64×64 box: a real model does far better than chance (~0.5)
    assert dice_mean(out, sample["truth"]) > 0.8


def test_api_one_call_and_prompt_from_another_image(sample):
    img, mask = blobs((160, 200), seed=1)
    other, other_mask = blobs((150, 170), seed=2)
    out = napari_fewcell.segment(other, img, mask, box=(20, 20, 64, 64), params=PromptParams(device="cpu"))
    assert out.shape == other.shape
    assert dice_mean(out, other_mask) > 0.8


def test_exact_and_fast_paths_agree_on_most_pixels(seg, blob_image):
    img, mask = blob_image
    prompt = seg.prepare_prompt(img, mask, (32, 32, 64, 64))
    fast = seg.segment(img, prompt)
    exact = Segmenter(PromptParams(device="cpu", attention="exact"), model=seg.model).segment(img, prompt)
    assert (fast == exact).mean() > 0.97


def test_tiled_equals_whole_image_on_most_pixels(seg):
    img, mask = blobs((300, 260), seed=3, n=30)
    prompt = seg.prepare_prompt(img, mask, (100, 100, 64, 64))
    whole = seg.segment(img, prompt)
    tiled = Segmenter(PromptParams(device="cpu", tile=96), model=seg.model).segment(img, prompt)
    assert (whole == tiled).mean() > 0.99


def test_multiclass_and_label_values_are_kept(seg):
    img, mask = blobs((128, 128), seed=4)
    labels = mask.astype(np.uint16) * 7  # class value 7
    labels[:, :10] = np.where(mask[:, :10] > 0, 3, 0)  # a second class, value 3
    prompt = seg.prepare_prompt(img, labels, (0, 0, 128, 128))
    out = seg.segment(img, prompt)
    assert set(np.unique(out)) <= {0, 3, 7}
    assert (out == 7).any()


def test_rgb_uint16_and_float_inputs(seg):
    img, mask = blobs((96, 96), seed=5)
    for variant in (np.stack([img] * 3, -1), img.astype(np.uint16) * 200, img.astype(np.float32) / 255):
        prompt = seg.prepare_prompt(variant, mask, (16, 16, 64, 64))
        assert seg.segment(variant, prompt).shape == (96, 96)


def test_progress_is_reported_and_generator_returns_labels(seg, blob_image):
    img, mask = blob_image
    prompt = seg.prepare_prompt(img, mask, (0, 0, 64, 64))
    gen = Segmenter(PromptParams(device="cpu", tile=64), model=seg.model).segment_iter(img, prompt)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        labels = stop.value
    assert steps[0].done == 0 and steps[-1].done == steps[-1].total == 4
    assert labels.shape == img.shape


# ---- bad input: one clear sentence each ---------------------------------------------------

@pytest.mark.parametrize(
    "box, match",
    [((10, 10, 0, 64), "empty"), ((100, 100, 64, 64), "not inside"), ((-5, 0, 64, 64), "not inside")],
)
def test_bad_boxes(seg, blob_image, box, match):
    img, mask = blob_image
    with pytest.raises(FewcellError, match=match):
        seg.prepare_prompt(img, mask, box)


def test_single_class_box(seg, blob_image):
    img, _ = blob_image
    with pytest.raises(FewcellError, match="one class cannot be segmented against nothing"):
        seg.prepare_prompt(img, np.zeros_like(img), (0, 0, 64, 64))
    with pytest.raises(FewcellError, match="paint"):
        seg.prepare_prompt(img, np.ones_like(img), (0, 0, 64, 64))


def test_uniform_box_with_two_classes_is_refused(seg, blob_image):
    """A blank box (one grey value) labelled with two classes: nothing tells them apart, so one sentence. A blank box
    of one class beside a box with contrast is a fine background box."""
    img, mask = blob_image
    img = img.copy()
    img[:64, :64] = img.min()
    flat_labels = np.zeros_like(mask)
    flat_labels[20:40, 20:40] = 1
    with pytest.raises(FewcellError, match="uniform .* nothing tells its classes apart"):
        seg.prepare_prompt(img, flat_labels, (0, 0, 64, 64))
    ys, xs = np.nonzero(mask)
    y, x = max(64, int(ys.mean()) - 32), max(64, int(xs.mean()) - 32)
    both = np.where(np.arange(img.shape[0])[:, None] < 64, 0, mask)
    prompt = seg.prepare_prompt_boxes(img, both, [(0, 0, 64, 64), (y, x, 64, 64)])
    assert len(prompt.sources) == 2


def test_labels_of_another_size(seg, blob_image):
    img, mask = blob_image
    with pytest.raises(FewcellError, match="size of the prompt image"):
        seg.prepare_prompt(img, mask[:100, :90], (0, 0, 64, 64))
    # exactly the box's size is accepted
    seg.prepare_prompt(img, mask[10:74, 20:84], (10, 20, 64, 64))


@pytest.mark.parametrize("shape", [(4, 64, 64), (2, 3, 64, 64)])
def test_stacks_are_refused_for_now(seg, shape):
    with pytest.raises(FewcellError, match="stacks are not supported yet"):
        seg.prepare_prompt(np.zeros(shape, np.uint8), np.zeros(shape[-2:]), (0, 0, 8, 8))


def test_nan_and_empty_images(seg, blob_image):
    img, mask = blob_image
    bad = img.astype(np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(FewcellError, match="NaN"):
        seg.prepare_prompt(bad, mask, (0, 0, 64, 64))
    bad[3, 3] = np.inf
    prompt = seg.prepare_prompt(img, mask, (0, 0, 64, 64))
    with pytest.raises(FewcellError, match="NaN or infinite"):
        seg.segment(bad, prompt)
    with pytest.raises(FewcellError, match="empty"):
        seg.segment(np.zeros((0, 10), np.uint8), prompt)


def test_corrupt_and_foreign_weights(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(FewcellError, match="not a readable napari-fewcell weights file"):
        load_model(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    with pytest.raises(FewcellError, match="not a napari-fewcell"):
        load_model(foreign)
    with pytest.raises(FewcellError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_weights_roundtrip_and_wrong_layout(tmp_path):
    net = EmbedNet(NetConfig(base=4, embed_dim=8))
    save_weights(net, tmp_path / "w.pt", {"note": "test"})
    loaded = load_model(tmp_path / "w.pt")
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    payload = torch.load(tmp_path / "w.pt", weights_only=True)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(FewcellError, match="does not match"):
        load_model(tmp_path / "broken.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_requested_but_absent():
    with pytest.raises(FewcellError, match="no CUDA GPU"):
        Segmenter(PromptParams(device="cuda"))


def test_several_boxes_overlap_counts_once(sample):
    """prepare_prompt_boxes: one box = prepare_prompt; two boxes: their pixels together, a pixel in both once
    (the later box wins); labels must then be the image's size."""
    from napari_fewcell.engine.core.errors import FewcellError

    seg = Segmenter(PromptParams(device="cpu", adapt="none"))
    img, truth = sample["image"], sample["truth"]
    one = seg.prepare_prompt_boxes(img, truth, [(256, 416, 64, 64)])
    assert one.labels.size == 64 * 64 and one.sources  # the single-box path (adaptable)
    two = seg.prepare_prompt_boxes(img, truth, [(256, 416, 64, 64), (288, 448, 64, 64)])
    assert two.labels.size == 2 * 64 * 64 - 32 * 32 and two.embeddings.shape[0] == two.labels.size
    assert set(np.unique(seg.segment(img, two))) <= {0, 1}
    with pytest.raises(FewcellError, match="size of the prompt image"):
        seg.prepare_prompt_boxes(img, truth[:64, :64], [(0, 0, 64, 64), (64, 64, 64, 64)])
