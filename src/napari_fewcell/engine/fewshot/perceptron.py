"""Workflow 3 — a perceptron over MSD feature maps, fitted on a few support images (paper 002, Eq. 4.2).

    p = σ(b + g(x)·W),   minimised:  DiceLoss(p, y) + λ‖W‖²

* ``g(x)``: the per-pixel features of :class:`~.features.Extractors`, standardised with the
  support pixels' mean and standard deviation.
* Start: scikit-learn's ``LogisticRegression`` (Newton–Cholesky) on the support pixels with the same penalty
  (``C = 1 / (2 n λ)``, so the mean log-loss + λ‖W‖² is minimised).
* Refinement: ``scipy.optimize.minimize(method="BFGS")`` on the soft Dice loss with its exact
  (analytic) gradient, stopping at gradient norm ``gtol`` (1e-5). The refined weights are kept
  only when their loss is lower than the logistic start; otherwise (or if BFGS fails) the
  logistic solution stays and the fit log says so.
* Several classes: one-vs-rest — one perceptron per class value other than background (0); a
  pixel takes the class of the most probable perceptron if that probability is ≥ 0.5, else 0.
  (Without a background class in the support, every class gets a perceptron and the argmax wins.)

A fitted perceptron is a few KB: plain arrays plus a JSON description in an ``.npz`` file
(read with ``allow_pickle=False``)::

    model = run(fit_iter([support(img, lab), support(img2, lab2, boxes=[(0, 0, 64, 64)])]))  # .job
    model.save("nuclei.npz")
    Perceptron.load("nuclei.npz").predict(new_image)
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Generator

import numpy as np
from scipy.special import expit

from ..core import modelfile
from ..core.blocks import TiledModel, label_blocks_iter
from ..core.errors import FewcellError
from ..core.image import as_image2d
from ..core.lazy import LazyImage, open_image
from ..core.progress import Progress, run
from ..nets.msd import shipped_names
from . import features
from .features import EXTRAS, Extractors
from .params import PerceptronParams

DICE_EPS = 1.0  #: smoothing of the soft Dice loss
log = logging.getLogger(__name__)


# ---- the loss ---------------------------------------------------------------------------------
def dice_loss_grad(theta: np.ndarray, X: np.ndarray, y: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """Soft Dice loss of ``σ(b + X·w)`` against binary ``y`` plus ``lam·‖w‖²``, and its exact gradient.

    ``theta = [b, w_1 … w_F]``. With I = Σ p·y and S = Σ p + Σ y + ε, Dice = (2I + ε) / S and
    ∂Dice/∂p_i = (2 y_i S − (2I + ε)) / S².
    """
    b, w = theta[0], theta[1:]
    p = expit(b + (X @ w.astype(X.dtype)).astype(np.float64))  # float32 features: half the memory traffic
    inter, s = float(p @ y), float(p.sum() + y.sum() + DICE_EPS)
    dice = (2 * inter + DICE_EPS) / s
    ddice_dp = (2 * y * s - (2 * inter + DICE_EPS)) / (s * s)
    dz = -ddice_dp * p * (1 - p)
    grad = np.empty_like(theta)
    grad[0] = dz.sum()
    grad[1:] = (X.T @ dz.astype(X.dtype)).astype(np.float64) + 2 * lam * w
    return 1.0 - dice + lam * float(w @ w), grad


def _bfgs(theta0: np.ndarray, X: np.ndarray, y: np.ndarray, p: PerceptronParams):
    from scipy.optimize import minimize

    return minimize(dice_loss_grad, theta0, args=(X, y, p.lam), jac=True, method="BFGS",
                    options={"gtol": p.gtol, "maxiter": p.maxiter})


def fit_one(X: np.ndarray, y: np.ndarray, p: PerceptronParams) -> tuple[np.ndarray, dict]:
    """Logistic start, then BFGS on Dice; returns (theta, record for the fit log)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    n = len(y)
    # Newton's method with a Cholesky solve: 6–7 iterations for ~120 features (lbfgs took 40–45 and 5× the time)
    lr = LogisticRegression(C=1.0 / (2 * n * p.lam) if p.lam > 0 else 1e12, solver="newton-cholesky", max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a start point; BFGS takes it from there
        lr.fit(X, y)
    theta0 = np.concatenate([lr.intercept_, lr.coef_[0]]).astype(np.float64)
    loss0, _ = dice_loss_grad(theta0, X, y, p.lam)
    rec = {"logistic_loss": round(loss0, 6), "logistic_seconds": round(time.perf_counter() - t0, 3)}
    if not p.bfgs:
        return theta0, {**rec, "kept": "logistic", "note": "BFGS refinement switched off"}
    t1 = time.perf_counter()
    try:
        res = _bfgs(theta0, X, y, p)
        theta, loss, ok, msg, nit = res.x, float(res.fun), bool(res.success), str(res.message), int(res.nit)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
        theta, loss, ok, msg, nit = theta0, math.inf, False, f"{type(err).__name__}: {err}", 0
    rec.update(bfgs_loss=round(loss, 6), bfgs_iterations=nit, bfgs_converged=ok,
               bfgs_seconds=round(time.perf_counter() - t1, 3))
    if np.all(np.isfinite(theta)) and loss < loss0:
        note = "" if ok else f"BFGS stopped before the gradient norm reached {p.gtol:g} ({msg}); kept its best point"
        return theta, {**rec, "kept": "bfgs", "note": note}
    note = f"BFGS did not improve on the logistic start ({msg}); kept the logistic solution"
    log.warning(note)
    return theta0, {**rec, "kept": "logistic", "note": note}


# ---- the model --------------------------------------------------------------------------------
class Perceptron(TiledModel):
    """A fitted perceptron: weights per foreground class over standardised extractor features."""

    def __init__(self, W, b, mean, std, classes, fg, meta: dict, extractors: Extractors | None = None):
        self.W = np.asarray(W, np.float64)  # (K, F)
        self.b = np.asarray(b, np.float64)  # (K,)
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self.classes = np.asarray(classes, np.int64)  # every class value seen in the support
        self.fg = np.asarray(fg, np.int64)  # the class value of each row of W
        self.meta = meta
        self._fx = extractors

    @property
    def intensity_range(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (low, high) intensities every image is mapped to [0, 1] with (intensity "support"), or None: each
        image by its own (intensity "image", and models fitted before the option existed)."""
        r = self.meta.get("intensity_range")
        return None if r is None else (np.asarray(r[0], np.float32), np.asarray(r[1], np.float32))

    def plan(self, image: LazyImage):
        """The range big images are normalised with block by block (TiledModel)."""
        r = self.intensity_range
        return image.intensity_range() if r is None else r

    @property
    def class_names(self) -> dict:
        return self.meta.get("class_names", {})

    @property
    def extractors(self) -> Extractors:
        if self._fx is None:
            self._fx = _extractors_for(self.meta, "this model", self.meta.get("params", {}).get("device", "auto"))
        return self._fx

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (K, F), bias (K,)) float32 over the raw features: the standardisation folded into the weights."""
        w = self.W / self.std
        b = self.b - (self.mean / self.std) @ self.W.T
        return w.astype(np.float32), b.astype(np.float32)

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        """(H, W, K) probability of each foreground class from (F, H, W) features."""
        return expit(features.linear(*self.folded(), feats)).transpose(1, 2, 0)

    def labels_from(self, probs: np.ndarray) -> np.ndarray:
        best = probs.argmax(-1)
        labels = self.fg[best]
        if 0 in self.classes:
            labels = np.where(probs.max(-1) >= 0.5, labels, 0)
        return labels.astype(self.label_dtype())

    def predict_iter(self, image, name: str = "image") -> Generator[Progress, None, np.ndarray]:
        arr = as_image2d(image, name)
        _check_channels(arr, self.meta.get("channels"), name)
        fx = self.extractors
        if fx.n_tiles(arr.shape[:2]) == 1:  # a support image's features are cached: applying to it costs nothing
            yield Progress(0, 1, "predicting")
            z = fx.project(arr, *self.folded(), rng=self.intensity_range)
            labels = self.labels_from(expit(z).transpose(1, 2, 0))
            yield Progress(1, 1, "predicting")
            return labels
        out = np.zeros(arr.shape[:2], self.label_dtype())  # large images: one tile's features at a time
        return (yield from label_blocks_iter(self, LazyImage(arr, name), out))

    def predict_lazy_iter(self, image, out, todo=None, on_block=None) -> Generator:
        """Predict a big image (a LazyImage or what ``open_image`` takes) block by block into ``out`` (zarr or
        numpy); the same labels as ``predict`` pixel for pixel, one block in memory at a time."""
        image = image if isinstance(image, LazyImage) else open_image(image)
        _check_channels(image.read(slice(0, 64), slice(0, 64)), self.meta.get("channels"), image.name)
        return (yield from label_blocks_iter(self, image, out, todo, on_block))

    # ---- block by block (a TiledModel) ---------------------------------------------------
    @property
    def tile(self) -> int:
        return features.TILE  #: the extractors' tiles (read at run time, as Extractors.n_tiles does) ...

    @property
    def margin(self) -> int:
        return features.MARGIN  #: ... and their context

    def tile_labels(self, x: np.ndarray, win) -> np.ndarray:
        z = self.extractors.project_region(x, *self.folded())[(slice(None), *win.inner)]
        return self.labels_from(expit(z).transpose(1, 2, 0))

    def predict(self, image) -> np.ndarray:
        return run(self.predict_iter(image))

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz: arrays + JSON, no pickles) atomically."""
        arrays = {"W": self.W, "b": self.b, "mean": self.mean, "std": self.std, "classes": self.classes,
                  "fg": self.fg}
        return modelfile.save_npz(path, modelfile.PERCEPTRON, arrays, self.meta)

    def check_kind(self, arr: np.ndarray, name: str = "image") -> None:
        """One sentence when the (H, W, C) ``arr`` is not of the kind (gray or colour) the perceptron was fitted on."""
        _check_channels(arr, self.meta.get("channels"), name)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "Perceptron":
        path = Path(path)
        payload = modelfile.read(path, modelfile.PERCEPTRON, reader=modelfile.npz_reader)
        meta, arrays = payload["meta"], payload["arrays"]
        try:
            W, b, mean, std = arrays["W"], arrays["b"], arrays["mean"], arrays["std"]
            classes, fg = arrays["classes"], arrays["fg"]
            ok = W.ndim == 2 and W.shape == (len(b), len(mean)) == (len(fg), len(std))
            ok = ok and all(np.isfinite(a).all() for a in (W, b, mean, std))
            wanted = meta.get("extractors")
            ok = ok and isinstance(wanted, list) and all(isinstance(e, dict) for e in wanted)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok or meta.get("n_features") != W.shape[1]:
            raise modelfile.PERCEPTRON.error(modelfile.PERCEPTRON.damaged, path)
        if meta.get("extras") != EXTRAS:
            raise FewcellError(
                f"{path} was fitted with other extra features than this napari-fewcell computes; fit it again on "
                "your support images."
            )
        fx = _extractors_for(meta, str(path), device)
        if fx.n_features != W.shape[1]:
            raise FewcellError(f"{path} does not match its feature extractors' layout; fit the perceptron again.")
        return cls(W, b, mean, std, classes, fg, meta, fx)


def _extractors_for(meta: dict, what: str, device: str) -> Extractors:
    """The shipped extractors a model was fitted with; a clear sentence when they are not here."""
    wanted = meta.get("extractors", [])
    have = shipped_names()
    # the arithmetic its features were computed in, where this device computes it natively (else float32: the same
    # features to bfloat16's rounding); models from before were float32
    precision = "auto" if meta.get("feature_precision") == "bfloat16" else "float32"
    fx = Extractors([e["name"] for e in wanted], device=device, precision=precision) \
        if all(e.get("name") in have for e in wanted) else None
    for i, e in enumerate(wanted):
        if fx is None or fx.spec[i]["sha256"] != e.get("sha256"):
            raise FewcellError(
                f"{what} was fitted with the feature extractor '{e.get('name')}' in another version than this "
                f"napari-fewcell ships ({', '.join(have) or 'none'}); fit it again on your support images."
            )
    return fx


def kind_of(arr: np.ndarray) -> str:
    """How a (H, W, C) image is described in sentences and in the model's metadata."""
    return "colour (RGB)" if arr.shape[-1] == 3 else "gray"


def _check_channels(arr: np.ndarray, channels: str | None, name: str) -> None:
    kind = kind_of(arr)
    if channels and kind != channels:
        raise FewcellError(
            f"The {name} is {kind} but the perceptron was fitted on {channels} images; "
            f"apply it to {channels} images or fit one on {kind} support images."
        )
