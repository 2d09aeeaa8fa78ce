"""The pretext task of paper 001 (§3.2): adapt a network to unannotated images before scoring.

Pseudo-labels come from classical operations (:func:`pretext_labels`); a copy of a shipped MSD
network is fine-tuned on them (:func:`pretext_iter`), so its scores fit the user's images
before anything is annotated. Nothing is saved.
"""
from __future__ import annotations

from typing import Generator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.augment import STRONG, augment
from ..core.image import as_image2d, intensity_range, normalize
from ..core.losses import soft_dice_loss
from ..core.progress import Progress
from .params import PretextParams
from .scorers import MSDScorer


def pretext_labels(image) -> np.ndarray:
    """Pseudo-labels of an image without annotation (paper 001 §3.2): histogram equalisation, a
    threshold, a 3×3 dilation. The paper sets the threshold by hand per data set; here it is Otsu's
    threshold of the image's intensities, carried to the equalised image (equalisation is monotone;
    Otsu on the equalised, flat histogram would cut the background in half). The side of the
    threshold that covers less of the image is the foreground: the structures of interest (nuclei,
    membranes) cover less than their surroundings, bright or dark. Returns (H, W) uint8 in {0, 1}."""
    from scipy import ndimage
    from skimage.exposure import equalize_hist
    from skimage.filters import threshold_otsu

    arr = as_image2d(image)
    gray = normalize(arr, intensity_range(arr)).mean(0)
    if gray.max() <= gray.min():
        return np.zeros(gray.shape, np.uint8)
    eq = equalize_hist(gray)
    t = threshold_otsu(gray)
    fg = eq > eq[gray <= t].max()  # the equalised value of Otsu's threshold
    if fg.mean() > 0.5:
        fg = ~fg
    return ndimage.binary_dilation(fg, np.ones((3, 3), bool)).astype(np.uint8)


def pretext_iter(scorer: MSDScorer, images: Sequence, params: PretextParams | None = None
                 ) -> Generator[Progress, None, MSDScorer]:
    """Adapt a copy of an MSD network to ``images`` on their pretext pseudo-labels (soft Dice + BCE)."""
    import copy

    p = params or PretextParams()
    p.check()
    arrs = [as_image2d(im) for im in images]
    xs = [normalize(a, intensity_range(a)) for a in arrs]
    ys = [pretext_labels(a) for a in arrs]
    rng = np.random.default_rng(p.seed)
    torch.manual_seed(p.seed)
    net = copy.deepcopy(scorer.net).cpu().train()
    opt = torch.optim.Adam(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sizes = np.array([y.size for y in ys], float)
    yield Progress(0, p.steps, "pretext training")
    for step in range(p.steps):
        bx, by = [], []
        c = min(p.crop, *(min(y.shape) for y in ys))
        for _ in range(p.batch):
            i = int(rng.choice(len(xs), p=sizes / sizes.sum()))
            H, W = ys[i].shape
            y0, x0 = rng.integers(0, H - c + 1), rng.integers(0, W - c + 1)
            a, b = augment(xs[i][:, y0 : y0 + c, x0 : x0 + c], ys[i][y0 : y0 + c, x0 : x0 + c], rng, STRONG)
            bx.append(a)
            by.append(b)
        x_t = torch.from_numpy(np.stack(bx))
        y_t = torch.from_numpy(np.stack(by).astype(np.float32))[:, None]
        logits = net(x_t)
        loss = soft_dice_loss(logits, y_t) + F.binary_cross_entropy_with_logits(logits, y_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield Progress(step + 1, p.steps, f"pretext training, loss {loss.item():.3f}")
    return MSDScorer(net.eval(), f"{scorer.name} + pretext", str(scorer.device))

