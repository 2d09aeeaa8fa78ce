"""Per-pixel feature vectors for workflow 3: all maps of several MSD feature extractors (paper 002).

Each shipped extractor is a binary MSD network trained on one known class (see docs/models.md).
A pixel's feature vector is, for every extractor, all its layers' maps and its output logit,
followed by cheap extras: the normalised input channels (3) and skimage's
``multiscale_basic_features`` of the luminance at σ = 1, 2, 4, 8, 16 px — Gaussian smoothing,
gradient magnitude and the two Hessian eigenvalues at each scale (20 maps, ilastik's classic
set). Chosen on train images only: with the extractors of the other classes, they raised the
perceptron's median validation Dice on ISBI train images by 4 points and on DSB fluorescence by
0.5–1.7, left DSB H&E at 5 shots unchanged and lowered it at 1 shot (docs/models.md).

    fx = Extractors()                 # the shipped extractors
    feats = fx.features(image)        # (fx.n_features, H, W) float32, channels first
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.device import resolve_precision, select_device
from ..core.errors import FewcellError
from ..core.files import file_sha256
from ..core.filters import KINDS, basic_features_many
from ..core.image import as_image2d, intensity_range, normalize
from ..core.tiling import n_windows, windows
from ..nets.msd import MSDNet, load_msd, shipped_names, shipped_path
from .params import PerceptronParams

SIGMAS = (1, 2, 4, 8, 16)  #: scales of the multiscale basic features (skimage's powers of 2 from 1 to 16)
EXTRAS = [f"input:{c}" for c in "rgb"] + [f"{kind}:{s}" for s in SIGMAS for kind in KINDS]
TILE, MARGIN = 1024, 96  #: images larger than TILE² are processed in tiles with MARGIN px of context
MIN_SIDE = 32  #: smaller images are mirror-padded to this size (the dilations reach 10 px)


class Extractors:
    """A set of MSD feature extractors with a small cache of computed features.

    ``names`` picks shipped extractors (default: all). A fitted perceptron records each one's name
    and sha256, so it is only ever applied with the very extractors it was fitted on.
    """

    def __init__(self, names: Sequence[str] | None = None, device: str = "auto", cache_bytes: int = 1 << 30,
                 precision: str | None = None):
        available = shipped_names()
        names = available if names is None else list(names)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise FewcellError(
                f"No shipped feature extractor is named {', '.join(unknown)}; the shipped ones are "
                f"{', '.join(available) or 'none'}."
            )
        files = [shipped_path(n) for n in names]
        if not files:
            raise FewcellError("No feature extractor was chosen; use at least one.")
        self.device = select_device(device)
        #: the MSD networks' arithmetic, resolved ("float32" or "bfloat16"; None: PerceptronParams.precision's default);
        #: the extras and every feature handed out stay float32
        self.precision = resolve_precision(self.device, precision or PerceptronParams.precision)
        self.dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        self.nets: list[MSDNet] = []
        self.spec: list[dict] = []
        for f in files:
            net, name, card = load_msd(f)
            self.nets.append(net.to(self.device, self.dtype))
            self.spec.append({"name": name, "sha256": file_sha256(f), "layers": net.config.n_maps,
                              "trained_on": card.get("trained_on", "")})
        self.feature_names = [f"{s['name']}:{i}" for s in self.spec for i in [*range(s["layers"]), "out"]] + EXTRAS
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._tiles: dict[bytes, np.ndarray] = {}  # scoring tiles' features (keep_tiles), by the tile's content
        self._tile_room: int | None = None  # bytes left for them; None: not kept
        self._tile_lock = threading.Lock()

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # ---- computation ---------------------------------------------------------------------
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """A normalised (3, h, w) region as a (1, 3, h', w') tensor, mirror-padded to at least MIN_SIDE."""
        h, w = x.shape[1:]
        ph, pw = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        xp = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="symmetric") if ph or pw else x
        return torch.from_numpy(np.ascontiguousarray(xp))[None].to(self.device, self.dtype)

    def region(self, x: np.ndarray) -> np.ndarray:
        """Features of a normalised (3, h, w) region: (F, h, w) float32 (channels first: no transposes)."""
        return self.region_batch(x[None])[0]

    def project_region(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``weight @ region(x) + bias``, (K, h, w) float32, one extractor's maps at a time: the (F, h, w) stack is
        never built (at 1024² it is ~0.5 GB, and copying it cost more than the extractors). The same numbers as
        through :meth:`region` up to float rounding."""
        return self.project_batch(x[None], weight, bias)[0]

    @torch.inference_mode()
    def project_batch(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """:meth:`project_region` of N normalised regions of one size (N, 3, h, w) at once, (N, K, h, w): each
        network makes one pass over the batch (tiles scored together)."""
        n, _, h, w = x.shape
        t = torch.cat([self._tensor(xi) for xi in x])
        wt = torch.as_tensor(np.asarray(weight), dtype=torch.float32).to(self.device)
        z = torch.as_tensor(np.asarray(bias), dtype=torch.float32).to(self.device)[None, :, None, None]
        z = z.repeat(n, 1, h, w)
        start = 0
        for net in self.nets:
            k = net.config.n_maps + net.config.out_channels
            z += net.project(t, wt[:, start : start + k])[:, :, :h, :w]
            start += k
        z += torch.einsum("kf,nfhw->nkhw", wt[:, start:], torch.from_numpy(extras_batch(x)).to(self.device))
        return z.cpu().numpy()

    @torch.inference_mode()
    def region_batch(self, x: np.ndarray) -> np.ndarray:
        """:meth:`region` of N normalised regions of one size (N, 3, h, w) at once: (N, F, h, w) float32."""
        h, w = x.shape[2:]
        t = torch.cat([self._tensor(xi) for xi in x])
        maps = torch.cat([net.features(t)[:, :, :h, :w] for net in self.nets], 1).float().cpu().numpy()
        return np.concatenate([maps, extras_batch(x)], axis=1)

    # ---- scoring tiles kept between the rounds of the suggest loop ------------------------
    def keep_tiles(self, max_bytes: int) -> None:
        """From now on keep the features of the tiles :meth:`tile_features` computes, up to ``max_bytes`` (float16):
        a tile scored again (the next round of the suggest loop, a refitted perceptron) costs only its projection."""
        with self._tile_lock:
            self._tile_room = max(0, int(max_bytes)) - sum(v.nbytes for v in self._tiles.values())

    @property
    def keeps_tiles(self) -> bool:
        return self._tile_room is not None

    @property
    def tile_room(self) -> int:
        """Bytes left for kept tile features (0 when they are not kept)."""
        return self._tile_room or 0

    def tile_features(self, x: np.ndarray, keep_only: bool = False) -> list[np.ndarray] | None:
        """The (F, h, w) features of each of N normalised tiles (N, 3, h, w) of one size. Once :meth:`keep_tiles` is
        on, every tile's features are rounded to float16 (kept or not: a score never depends on what is kept), the
        kept ones are read back and the others computed together and kept while there is room. ``keep_only``:
        compute and keep, return None."""
        half = self.keeps_tiles
        keys = [hashlib.blake2b(np.ascontiguousarray(xi).tobytes(), digest_size=16).digest() for xi in x] if half \
            else [b""] * len(x)
        kept = [self._tiles.get(k) for k in keys]
        todo = [i for i, f in enumerate(kept) if f is None]
        new = self.region_batch(x[todo]) if todo else None
        for j, i in enumerate(todo):
            kept[i] = new[j].astype(np.float16) if half else new[j]
            if half:
                with self._tile_lock:
                    if kept[i].nbytes <= self._tile_room and keys[i] not in self._tiles:
                        self._tiles[keys[i]], self._tile_room = kept[i], self._tile_room - kept[i].nbytes
        return None if keep_only else kept

    def project_tiles(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``weight @ features + bias`` of N normalised tiles (N, 3, h, w) through :meth:`tile_features`: (N, K, h, w)
        float32, one tile's features in float32 at a time."""
        w = torch.as_tensor(np.asarray(weight), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(bias), dtype=torch.float32)[:, None]
        out = np.empty((len(x), len(b), *x.shape[2:]), np.float32)
        for i, f in enumerate(self.tile_features(x)):
            out[i] = torch.addmm(b, w, torch.from_numpy(f).view(len(f), -1).float()).view(-1, *x.shape[2:]).numpy()
        return out

    @property
    def tiles_kept(self) -> int:
        """How many tiles' features are kept (:meth:`keep_tiles`)."""
        return len(self._tiles)

    def project(self, image, weight: np.ndarray, bias: np.ndarray, rng=None) -> np.ndarray:
        """``weight @ features(image, rng) + bias``: (K, H, W) float32 for a whole 2D image, through the cache when
        its features are there (e.g. a support image), else tile by tile with :meth:`project_region` (not cached)."""
        arr = as_image2d(image)
        feats = self._cache.get(self._key(arr, rng))
        if feats is not None:
            return linear(weight, bias, feats)
        x = normalized(arr, rng)
        out = np.empty((len(bias), *arr.shape[:2]), np.float32)
        for win in windows(x.shape[1:], TILE, MARGIN):
            z = self.project_region(x[(slice(None), *win.region)], weight, bias)
            out[(slice(None), *win.tile)] = z[(slice(None), *win.inner)]
        return out

    @staticmethod
    def n_tiles(shape) -> int:
        return n_windows(shape, TILE)

    def tiles(self, arr: np.ndarray, rng=None) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """(rows, cols, features) of an (H, W, C) image tile by tile: bounded memory for large images. ``rng``:
        the (low, high) intensities mapped to 0 and 1 (None: the image's own, :func:`intensity_range`)."""
        x = normalized(arr, rng)
        for win in windows(x.shape[1:], TILE, MARGIN):
            f = self.region(x[(slice(None), *win.region)])
            yield (*win.tile, f[(slice(None), *win.inner)])

    def _compute(self, arr: np.ndarray, rng=None) -> np.ndarray:
        H, W = arr.shape[:2]
        if self.n_tiles((H, W)) == 1:
            return next(self.tiles(arr, rng))[2]
        out = np.empty((self.n_features, H, W), np.float32)
        for rows, cols, f in self.tiles(arr, rng):
            out[:, rows, cols] = f
        return out

    @staticmethod
    def _key(arr: np.ndarray, rng=None) -> tuple:
        span = None if rng is None else tuple(float(v) for part in rng for v in np.ravel(part))
        return (hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16).hexdigest(), arr.shape,
                str(arr.dtype), span)

    def features(self, image, rng=None) -> np.ndarray:
        """(n_features, H, W) float32 features of a 2D gray or RGB image (cached by content and ``rng``), normalised
        by its own intensity range or by ``rng`` = (low, high) per channel."""
        arr = as_image2d(image)
        key = self._key(arr, rng)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        feats = self._compute(arr, rng)
        if feats.nbytes <= self._cache_bytes:
            self._cache[key] = feats
            while sum(v.nbytes for v in self._cache.values()) > self._cache_bytes:
                self._cache.popitem(last=False)
        return feats


def linear(weight: np.ndarray, bias: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """``weight @ feats + bias`` per pixel: (K, H, W) float32 from (F, H, W) features, (K, F) weight, (K,) bias."""
    f = feats.shape[0]
    z = np.asarray(weight, np.float32) @ feats.reshape(f, -1) + np.asarray(bias, np.float32)[:, None]
    return z.reshape(-1, *feats.shape[1:])


def normalized(arr: np.ndarray, rng=None) -> np.ndarray:
    """An (H, W, C) image as float32 (3, H, W) in [0, 1]: by ``rng`` = (low, high), or by its own range."""
    return normalize(arr, intensity_range(arr) if rng is None else rng)


def extras(x: np.ndarray) -> np.ndarray:
    """The cheap extra features of a normalised (3, h, w) region: (len(EXTRAS), h, w) float32, the input channels and
    then, per scale in SIGMAS, smoothing, edges and the two Hessian eigenvalues of the luminance (core/filters.py)."""
    return extras_batch(x[None])[0]


def extras_batch(x: np.ndarray) -> np.ndarray:
    """:func:`extras` of N normalised regions of one size (N, 3, h, w): (N, len(EXTRAS), h, w), every region's scales
    computed together (tiles scored in a batch keep both threads busy)."""
    c = x.shape[1]
    out = np.empty((len(x), len(EXTRAS), *x.shape[2:]), np.float32)
    out[:, :c] = x
    basic_features_many(x.mean(1), SIGMAS, out[:, c:], threads=torch.get_num_threads())
    return out
