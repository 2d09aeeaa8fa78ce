"""Workflow 3: MSD feature perceptron — loss gradient, BFGS vs logistic, fit/apply, files, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import approx_fprime

from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.fewshot import Perceptron, PerceptronParams, fit, fit_iter, support
from napari_fewcell.engine.fewshot.features import Extractors
from napari_fewcell.engine.fewshot.perceptron import dice_loss_grad, fit_one
from napari_fewcell.engine.models import open_model
from napari_fewcell.engine.nets import msd
from napari_fewcell.engine.nets.msd import MSDConfig, MSDNet, shipped_names
from napari_fewcell.engine.nets.msd import dilated_conv as _dilated

from .conftest import blobs, dice_mean


@pytest.fixture(scope="module")
def fx():
    return Extractors(device="cpu")


def _problem(seed, n=400, f=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = (X @ rng.normal(size=f) + rng.normal(0, 1.5, n) > 0.8).astype(float)
    return X, y


# ---- the network --------------------------------------------------------------------------------
def test_dilated_matches_torch_convolution():
    conv = torch.nn.Conv2d(5, 1, 3, padding=3, dilation=3, padding_mode="reflect")
    z = torch.rand(2, 5, 23, 31)
    assert torch.allclose(conv(z), _dilated(conv, z, 3), atol=1e-5)


@pytest.mark.parametrize("group", [1, 2, 3])
def test_msd_train_and_inference_paths_agree_and_keep_resolution(group, monkeypatch):
    """Inference mixes GROUP layers' inputs by one product (msd.GROUP): any group size, and a last group cut short
    (11 layers), gives the training path's maps."""
    monkeypatch.setattr(msd, "GROUP", group)
    for depth in (12, 11):
        net = MSDNet(MSDConfig(depth=depth, max_dilation=5)).eval()
        x = torch.rand(2, 3, 40, 36)
        maps = net.all_maps(x)
        assert maps.shape == (2, 3 + depth, 40, 36)
        assert torch.allclose(maps, net._all_maps_train(x), atol=1e-5)
        assert net.features(x).shape == (2, depth + 1, 40, 36)
    assert net.config.radius == sum([1, 2, 3, 4, 5] * 2 + [1])


def test_msd_projection_folds_the_head_and_matches_the_features():
    shallow = MSDNet(MSDConfig(depth=3, max_dilation=10, out_channels=2)).eval()  # 8 px: too small to pad by 10
    for net, shape in [(MSDNet(MSDConfig(depth=9, max_dilation=4, out_channels=2)).eval(), (2, 3, 33, 27)),
                       (shallow, (1, 3, 8, 30))]:
        weight = torch.randn(3, net.config.n_maps + 2)
        x = torch.rand(*shape)
        want = torch.einsum("kf,nfhw->nkhw", weight, net.features(x))
        assert net.project(x, weight).shape == want.shape
        assert torch.allclose(net.project(x, weight), want, atol=1e-4)


def test_shipped_extractors_load_with_weights_only(fx):
    assert len(shipped_names()) >= 3
    assert fx.n_features == len(fx.feature_names) == sum(s["layers"] + 1 for s in fx.spec) + 23
    img, _ = blobs((48, 40))
    feats = fx.features(img)
    assert feats.shape == (fx.n_features, 48, 40) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert fx.features(img) is feats  # cached by content
    assert fx.features(np.zeros((12, 9), np.uint8)).shape == (fx.n_features, 12, 9)  # tiny images are padded


# ---- the loss and the optimisers ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_gradient_matches_finite_differences(seed):
    X, y = _problem(seed)
    theta = np.random.default_rng(seed + 10).normal(0, 0.5, X.shape[1] + 1)
    f, g = dice_loss_grad(theta, X, y, 0.05)
    num = approx_fprime(theta, lambda t: dice_loss_grad(t, X, y, 0.05)[0], 1e-6)
    assert 0 < f < 2
    np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_bfgs_never_ends_above_its_logistic_start(seed):
    X, y = _problem(seed, n=600, f=8)
    p = PerceptronParams(lam=1e-3)
    theta, rec = fit_one(X, y, p)
    assert rec["kept"] in ("bfgs", "logistic")
    final, _ = dice_loss_grad(theta, X, y, p.lam)
    assert final <= rec["logistic_loss"] + 1e-9
    if rec["kept"] == "bfgs":
        assert rec["bfgs_loss"] < rec["logistic_loss"]


@pytest.mark.parametrize("how", ["worse", "raises"])
def test_bfgs_failure_keeps_the_logistic_solution(monkeypatch, how):
    import scipy.optimize

    from napari_fewcell.engine.fewshot import perceptron

    X, y = _problem(3)

    def broken(theta0, X, y, p):
        if how == "raises":
            raise np.linalg.LinAlgError("singular")
        return scipy.optimize.OptimizeResult(x=theta0 + 5.0, fun=9.0, success=False, message="did not converge", nit=3)

    monkeypatch.setattr(perceptron, "_bfgs", broken)
    theta, rec = fit_one(X, y, PerceptronParams())
    start, _ = dice_loss_grad(theta, X, y, PerceptronParams().lam)
    assert rec["kept"] == "logistic" and "kept the logistic solution" in rec["note"]
    assert start == pytest.approx(rec["logistic_loss"], abs=1e-6)


# ---- fit / apply -----------------------------------------------------------------------------------
def test_fit_and_apply_learn_blobs(fx):
    train = [blobs((96, 96), seed=s, n=10) for s in (1, 2)]
    model = run(fit_iter([support(i, m) for i, m in train], PerceptronParams(), extractors=fx))
    img, truth = blobs((120, 100), seed=7, n=12)
    pred = model.predict(img)
    assert pred.shape == truth.shape and pred.dtype == np.uint8
    assert dice_mean(pred, truth) > 0.9
    rec = model.meta["fit"][0]
    assert rec["class"] == 1 and rec["kept"] in ("bfgs", "logistic")


def test_fit_from_boxes_in_one_image(fx):
    img, mask = blobs((128, 128), seed=4, n=16)
    boxes = [(0, 0, 64, 64), (64, 64, 64, 64)]
    labels = mask.copy()
    labels[:64, 64:] = 0  # outside the boxes nothing is known: wrong values there must not matter
    labels[64:, :64] = 1
    model = run(fit_iter([support(img, labels, boxes)], extractors=fx))
    assert model.meta["support"][0]["annotated_pixels"] == 2 * 64 * 64
    assert dice_mean(model.predict(img), mask) > 0.9


def test_multiclass_one_vs_rest(fx):
    rng = np.random.default_rng(0)
    img, mask = blobs((112, 112), seed=9, n=14)
    yy, xx = np.mgrid[:112, :112]
    square = np.zeros_like(mask)
    for _ in range(4):
        cy, cx = rng.integers(8, 100, 2)
        square[(abs(yy - cy) < 6) & (abs(xx - cx) < 6) & (mask == 0)] = 1
    img = np.where(square == 1, 110, img).astype(np.uint8)
    labels = mask + 2 * square
    model = run(fit_iter([support(img, labels)], extractors=fx))
    assert list(model.fg) == [1, 2] and model.meta["multiclass"] == "one-vs-rest"
    pred = model.predict(img)
    for v in (1, 2):
        assert 2 * ((pred == v) & (labels == v)).sum() / ((pred == v).sum() + (labels == v).sum()) > 0.7


def test_save_load_round_trip(fx, tmp_path):
    img, mask = blobs((80, 80), seed=5)
    model = run(fit_iter([support(img, mask)], PerceptronParams(lam=1e-2), extractors=fx,
                         class_names={1: "nucleus"}))
    path = model.save(tmp_path / "m.npz")
    assert path.stat().st_size < 64_000
    with np.load(path, allow_pickle=False) as z:  # plain arrays + JSON, no pickles
        assert json.loads(str(z["meta"]))["format"] == "napari-fewcell/perceptron"
    back = open_model(path, device="cpu")
    assert isinstance(back, Perceptron)
    np.testing.assert_array_equal(back.W, model.W)
    assert back.class_names == {"1": "nucleus"} and back.meta["params"]["lam"] == 1e-2
    other, _ = blobs((64, 72), seed=6)
    np.testing.assert_array_equal(back.predict(other), model.predict(other))


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_support_inputs(fx):
    img, mask = blobs((64, 64))
    with pytest.raises(FewcellError, match="image's height and width"):
        support(img, mask[:60])
    with pytest.raises(FewcellError, match="only background"):
        run(fit_iter([support(img, np.zeros_like(mask))], extractors=fx))
    rgb = np.repeat(img[..., None], 3, -1)
    with pytest.raises(FewcellError, match="same number of channels"):
        run(fit_iter([support(img, mask), support(rgb, mask, name="colour one")], extractors=fx))
    with pytest.raises(FewcellError, match="No support image"):
        run(fit_iter([], extractors=fx))
    with pytest.raises(FewcellError, match="labels"):
        fit([img, img], [mask])


def test_uniform_support_with_two_classes_is_refused(fx):
    """A blank support image (or box) labelled with two classes: one sentence, before any feature is computed. A
    blank box of background beside a box with contrast is fine."""
    img, mask = blobs((96, 96))
    blank = np.full_like(img, img.min())
    with pytest.raises(FewcellError, match="^Support image 2 is uniform .* nothing tells its classes apart"):
        run(fit_iter([support(img, mask), support(blank, mask, name="support image 2")], extractors=fx))
    flat = img.copy()
    flat[:32, :32] = img.min()
    lab = mask.copy()
    lab[8:16, 8:16] = 1
    with pytest.raises(FewcellError, match="^An annotated box of s is uniform"):
        run(fit_iter([support(flat, lab, [(0, 0, 32, 32), (32, 32, 64, 64)], name="s")], extractors=fx))
    model = run(fit_iter([support(flat, np.where(np.arange(96)[:, None] < 32, 0, mask),
                                  [(0, 0, 32, 32), (32, 32, 64, 64)])], extractors=fx))
    assert model.predict(img).shape == img.shape


def _resave(path, tmp_path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        meta[key] = value(meta) if callable(value) else value
    arrays["meta"] = np.array(json.dumps(meta))
    out = tmp_path / "changed.npz"
    np.savez(out, **arrays)
    return out


def test_bad_model_files(fx, tmp_path):
    img, mask = blobs((64, 64))
    path = run(fit_iter([support(img, mask)], extractors=fx)).save(tmp_path / "m.npz")
    other = _resave(path, tmp_path, extractors=lambda m: [{**e, "sha256": "0" * 64} for e in m["extractors"]])
    with pytest.raises(FewcellError, match="another version than this napari-fewcell ships"):
        Perceptron.load(other)
    with pytest.raises(FewcellError, match="other extra features"):
        Perceptron.load(_resave(path, tmp_path, extras=["gauss:1"]))
    with pytest.raises(FewcellError, match="format version 99"):
        Perceptron.load(_resave(path, tmp_path, version=99))
    with pytest.raises(FewcellError, match="not a napari-fewcell perceptron"):
        Perceptron.load(_resave(path, tmp_path, format="something/else"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FewcellError):
        open_model(junk)
    with pytest.raises(FewcellError, match="does not exist"):
        Perceptron.load(tmp_path / "missing.npz")
    model = Perceptron.load(path)
    with pytest.raises(FewcellError, match="fitted on gray images"):
        model.predict(np.repeat(img[..., None], 3, -1))


def test_large_images_are_predicted_tile_by_tile(fx, monkeypatch):
    from napari_fewcell.engine.fewshot import features

    img, mask = blobs((100, 90), seed=12, n=12)
    model = run(fit_iter([support(img, mask)], extractors=fx))
    whole = model.predict(img)
    monkeypatch.setattr(features, "TILE", 40)  # 3×3 tiles with context margins
    fx._cache.clear()
    assert fx.n_tiles(img.shape) == 9
    steps = []
    gen = model.predict_iter(img)
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        tiled = stop.value
    assert [p.done for p in steps] == list(range(10))
    assert (tiled == whole).mean() > 0.97
    assert fx.features(img).shape == (fx.n_features, 100, 90)


def test_a_big_image_annotated_in_boxes_is_read_box_by_box(fx, monkeypatch):
    """An image the extractors tile gets its features box by box (with the tiles' context), not whole: a refit
    after one more box computes only that box; the fit still segments the image."""
    from napari_fewcell.engine.fewshot import features

    monkeypatch.setattr(features, "TILE", 64)  # 160×150 is then "big"
    monkeypatch.setattr(features, "MARGIN", 16)
    img, mask = blobs((160, 150), seed=5, n=20)
    seen, compute = [], fx.features
    monkeypatch.setattr(fx, "features", lambda image, rng=None: seen.append(image.shape[:2]) or compute(image, rng))
    model = run(fit_iter([support(img, mask, [(0, 0, 48, 48), (96, 80, 48, 48)])], PerceptronParams(), extractors=fx))
    assert seen == [(64, 64), (80, 80)]  # each box and 16 px around it, inside the image
    assert dice_mean(model.predict(img), mask) > 0.9
    seen.clear()
    run(fit_iter([support(img, mask, [(0, 0, 48, 48)])], PerceptronParams(), extractors=fx))
    assert seen == [(64, 64)]


def test_a_class_painted_on_a_few_pixels_is_never_sampled_away(fx):
    from napari_fewcell.engine.fewshot.support_set import sample_pixels as _sample_pixels

    img, mask = blobs((120, 120), seed=3, n=10)
    labels = mask.copy()
    labels[5:8, 5:8] = 2  # nine pixels of a second class
    data = [support(img, labels)]
    rows = _sample_pixels(data, 500, np.random.default_rng(0))[0]
    assert (labels.ravel()[rows] == 2).sum() == 9 and 500 <= len(rows) <= 500 + 9 + 2 * 200
    assert len(np.unique(rows)) == len(rows)
    model = run(fit_iter(data, PerceptronParams(max_pixels=500), extractors=fx))
    assert list(model.fg) == [1, 2]


def test_applying_without_the_feature_stack_gives_the_stacks_numbers(fx):
    """predict() projects each extractor's maps on the weights as they come (no (F, H, W) stack); the logits are
    those of the weights applied to the full feature stack, for an image never seen and for a cached one."""
    img, mask = blobs((96, 96), seed=5, n=10)
    model = run(fit_iter([support(img, mask)], extractors=fx))
    new, truth = blobs((130, 110), seed=9, n=12)
    w, b = model.folded()
    fx._cache.clear()
    projected = fx.project(new, w, b)
    assert not fx._cache  # a projected image is not cached
    stacked = model.probabilities(fx.features(new))  # now cached: project() takes the cache's features
    assert np.allclose(1 / (1 + np.exp(-projected.transpose(1, 2, 0))), stacked, atol=1e-5)
    assert np.allclose(fx.project(new, w, b), projected, atol=1e-4)
    assert (model.predict(new) == model.labels_from(stacked)).mean() > 0.9999
    assert dice_mean(model.predict(new), truth) > 0.9


def test_support_intensity_maps_every_image_with_the_supports_range(fx, tmp_path):
    """intensity="support": the support's pooled range is kept in the model and used for every image, so a region
    predicts the same inside an image whose own range differs (here: a saturated strip widens it)."""
    img, mask = blobs((96, 96), seed=6, n=10)
    model = run(fit_iter([support(img, mask)], PerceptronParams(intensity="support"), extractors=fx))
    lo, hi = model.intensity_range
    assert model.meta["intensity_range"] == [[float(v) for v in lo], [float(v) for v in hi]]
    wider = np.concatenate([img, np.full((40, 96), 4 * float(img.max()), img.dtype)]).astype(np.float32)
    own = model.predict(img)
    assert (model.predict(wider)[:80] == own[:80]).mean() > 0.999  # rows far from the strip: same features
    per_image = run(fit_iter([support(img, mask)], PerceptronParams(intensity="image"), extractors=fx))
    assert per_image.intensity_range is None
    w, b = per_image.folded()
    assert not np.allclose(fx.project(wider, w, b)[:, :80], fx.project(img, w, b)[:, :80])  # its own range moves it
    path = model.save(tmp_path / "support.npz")
    again = Perceptron.load(path)
    assert np.array_equal(again.predict(wider), model.predict(wider))


def test_support_intensity_block_by_block_uses_the_models_range(fx, monkeypatch):
    from napari_fewcell.engine.core.lazy import LazyImage
    from napari_fewcell.engine.fewshot import features

    img, mask = blobs((100, 90), seed=13, n=12)
    model = run(fit_iter([support(img, mask)], PerceptronParams(intensity="support"), extractors=fx))
    bright = img.astype(np.float32) * 0.5
    assert model.plan(LazyImage(np.asarray(bright)[..., None], "x")) == model.intensity_range
    whole = model.predict(bright)
    monkeypatch.setattr(features, "TILE", 40)
    fx._cache.clear()
    assert (model.predict(bright) == whole).mean() > 0.97
    with pytest.raises(FewcellError, match="intensity mapping"):
        PerceptronParams(intensity="own").check()


def test_bfloat16_features_are_recorded_and_give_the_same_labels(tmp_path):
    """PerceptronParams.precision: the extractors in bfloat16 label as float32 does (up to rounding), the model says
    what its features were computed in, and a saved model is applied so where this CPU computes bfloat16 natively
    (models from before, float32, stay float32)."""
    from napari_fewcell.engine.core.device import resolve_precision

    data = [support(*blobs((96, 96), seed=s, n=10)) for s in (1, 2)]
    img, truth = blobs((120, 100), seed=7, n=12)
    half = run(fit_iter(data, PerceptronParams(precision="bfloat16", device="cpu")))
    full = run(fit_iter(data, PerceptronParams(precision="float32", device="cpu")))
    assert half.meta["feature_precision"] == "bfloat16" and full.meta["feature_precision"] == "float32"
    a, b = half.predict(img), full.predict(img)
    assert np.mean(a == b) > 0.99 and dice_mean(a, truth) > 0.9
    back = open_model(half.save(tmp_path / "h.npz"), device="cpu")
    assert back.extractors.precision == resolve_precision(torch.device("cpu"), "auto")
    assert open_model(full.save(tmp_path / "f.npz"), device="cpu").extractors.precision == "float32"
    with pytest.raises(FewcellError, match="Unknown precision 'half'"):
        PerceptronParams(precision="half").check()
