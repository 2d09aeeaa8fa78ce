"""Images: input checks, 2D planes of a stack, and intensity normalisation to [0, 1] (paper 000, §4.1)."""
from __future__ import annotations

import numpy as np

from .errors import FewcellError

#: percentiles used for the [0, 1] stretch; robust to a few hot pixels in uint16 data
LOW_PCT, HIGH_PCT = 0.1, 99.9


def as_image2d(image, name: str = "image") -> np.ndarray:
    """Validate a 2D gray (H, W) or colour (H, W, 3|4) image; return it as (H, W, C) array.

    Raises FewcellError with one sentence on anything else.
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise FewcellError(f"The {name} has pixel type {arr.dtype}; expected integer or float pixels.")
    if arr.size == 0 or 0 in arr.shape:
        raise FewcellError(f"The {name} is empty (shape {arr.shape}); open a non-empty image.")
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        pass
    else:
        raise FewcellError(
            f"The {name} has shape {arr.shape} but a 2D image (gray H×W or RGB H×W×3) is expected; "
            "stacks are not supported yet — segment the current plane instead."
        )
    require_finite(arr, name)
    if arr.dtype.itemsize > 4 and np.issubdtype(arr.dtype, np.floating) and arr.size \
            and np.abs(arr).max() > np.finfo(np.float32).max:  # read as float32: they would become infinite
        raise FewcellError(f"The {name} holds values beyond ±3.4e38, more than 32-bit floats hold; rescale it first.")
    if min(arr.shape[:2]) < 8:
        raise FewcellError(f"The {name} is only {arr.shape[0]}×{arr.shape[1]} pixels; it must be at least 8×8.")
    return arr


def require_finite(arr: np.ndarray, name: str = "image") -> None:
    """One sentence for a float image holding NaN or infinite pixels."""
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise FewcellError(
            f"The {name} contains NaN or infinite pixels; replace them (e.g. with 0) before segmenting."
        )


#: luminance weights of linear RGB (ITU-R BT.709, as skimage's rgb2gray): a colour image seen as gray
LUMINANCE = np.array([0.2125, 0.7154, 0.0721], np.float32)


def luminance(arr: np.ndarray) -> np.ndarray:
    """An (h, w, C) region as its (h, w, 1) float32 luminance (a gray region is returned as it is)."""
    if arr.shape[-1] == 1:
        return arr
    return (arr[..., :3].astype(np.float32) @ LUMINANCE)[..., None]


def is_colour_sample(sample: np.ndarray) -> bool:
    """Whether an (N, C) pixel sample is of a colour image: three channels that are not all equal (gray stored
    as RGB is gray)."""
    return sample.shape[-1] >= 3 and not (np.array_equal(sample[:, 0], sample[:, 1])
                                          and np.array_equal(sample[:, 0], sample[:, 2]))


def is_colour(image, name: str = "image") -> bool:
    """Whether a 2D image (H, W) or (H, W, 3|4) is colour, from the strided sample the intensity range reads (a
    LazyImage answers itself; a stack by its first plane). ``name``: the image in a sentence about it."""
    if hasattr(image, "is_colour"):
        return image.is_colour()
    return is_colour_sample(strided_sample(as_image2d(planes_of(image)[0][0], name)))


def sample_step(shape: tuple[int, int], max_samples: int = 1_000_000) -> int:
    """The stride of the subsample :func:`intensity_range` reads (at most ``max_samples`` pixels)."""
    return max(1, int(np.sqrt(shape[0] * shape[1] / max_samples)))


def range_of_sample(sample: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) of an (N, C) pixel sample: one range for all channels, so colour balance is kept
    (gray stored as RGB, or images whose channels differ)."""
    sample = sample.astype(np.float32)
    lo = np.percentile(sample, LOW_PCT, axis=0)
    hi = np.percentile(sample, HIGH_PCT, axis=0)
    lo_all, hi_all = float(lo.min()), float(hi.max())
    if hi_all <= lo_all:
        hi_all = lo_all + 1.0
    return np.full(channels, lo_all, np.float32), np.full(channels, hi_all, np.float32)


def strided_sample(arr: np.ndarray, max_samples: int = 1_000_000) -> np.ndarray:
    """The (N, C) strided subsample of an (H, W, C) image that :func:`intensity_range` and :func:`is_colour` read."""
    step = sample_step(arr.shape[:2], max_samples)
    return arr[::step, ::step].reshape(-1, arr.shape[-1])


def intensity_range(arr: np.ndarray, max_samples: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) percentiles of an (H, W, C) image, from a strided subsample."""
    return range_of_sample(strided_sample(arr, max_samples), arr.shape[-1])


def normalize(arr: np.ndarray, rng: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Map an (H, W, C) region to float32 (3, H, W) in [0, 1] using a precomputed range."""
    lo, hi = rng
    out = (arr.astype(np.float32) - lo) / (hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def planes_of(arr, name: str = "image") -> tuple[list[np.ndarray], bool]:
    """Split an image into 2D planes: (H, W), (H, W, 1|3|4) → one plane; (Z, H, W) or (Z, H, W, 3|4) → Z planes.

    Returns (planes, is_stack).
    """
    a = np.asarray(arr)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3, 4)):
        return [a], False
    if a.ndim == 3 and a.shape[-1] == 2 and min(a.shape[:2]) >= 8:  # not a stack of 2-pixel-wide planes
        raise FewcellError(f"The {name} has 2 channels ({'×'.join(map(str, a.shape))}); keep one channel, or make "
                           "it a colour (RGB) image.")
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (3, 4)):
        return [a[z] for z in range(a.shape[0])], True
    raise FewcellError(
        f"The {name} has shape {a.shape}; expected a 2D image (H×W, or H×W×3 colour) or a stack of them (Z×H×W)."
    )
