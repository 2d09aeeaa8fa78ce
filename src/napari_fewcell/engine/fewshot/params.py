"""PerceptronParams: every parameter of fitting a perceptron on support images (workflow 3) with its default,
shared by the widget, the CLI and the API."""
from __future__ import annotations

import dataclasses
import math

from ..core.errors import FewcellError
from ..core.options import DEVICES, PRECISIONS, check_numbers, check_precision, check_seed, option

INTENSITIES = ("support", "image")  #: values of ``PerceptronParams.intensity``


@dataclasses.dataclass
class PerceptronParams:
    """Fitting parameters, shared by the widget, the CLI and the API."""

    #: λ of the L2 penalty λ‖W‖² (on standardised features)
    lam: float = option(1e-3, "λ (L2 penalty)", "λ of the L2 penalty λ‖W‖²: larger is smoother, safer with one "
                        "support image.", min=0.0, max=1.0, step=1e-4)
    bfgs: bool = option(True, "Refine by BFGS on the Dice loss", "Refine the logistic solution by BFGS on the Dice "
                        "loss (paper 002).")
    gtol: float = 1e-5  #: BFGS stops when the gradient norm is below this
    maxiter: int = 1000  #: BFGS iteration cap
    max_pixels: int = 30_000  #: support pixels used for fitting (a seeded random sample when there are more)
    extractors: tuple[str, ...] | None = None  #: shipped extractors to use; None = all
    #: how an image's intensities are mapped to [0, 1] before the extractors: "support" (one range, the support
    #: images' pooled percentiles, kept in the model and used for every image it is applied to) or "image" (each
    #: image by its own percentiles)
    intensity: str = "image"
    device: str = option("auto", "Device", "Where the networks run.", DEVICES)
    #: the feature extractors' arithmetic: "auto" = bfloat16 where the device computes it natively (core/device.py),
    #: else float32; the maps are handed out and projected in float32. The model records what its features were
    #: computed in (``feature_precision``) and is applied in the same where the device computes it natively (else
    #: float32). "auto" since 2026-12-07: on this project's AVX512-BF16 CPU (2 cores) applying to 1024² takes 0.75 s
    #: instead of 1.05-1.13 s, and bench_fewshot's leave-one-class-out Dice is the same to 0.1 on every set and shot
    #: count (benchmarks/results/fewshot_precision_{float32,bfloat16}.md)
    precision: str = option("auto", "Precision", "The feature extractors' arithmetic: auto = bfloat16 where this "
                            "computer computes it natively (faster), else float32.", PRECISIONS)
    seed: int = 0

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise FewcellError(f"λ must be a non-negative number, not {self.lam}.")
        check_precision(self.precision)
        if self.intensity not in INTENSITIES:
            raise FewcellError(f"Unknown intensity mapping '{self.intensity}': choose {' or '.join(INTENSITIES)}.")
        if not self.max_pixels >= 100:
            raise FewcellError(f"At least 100 support pixels must be used (--max-pixels), not {self.max_pixels}.")
        if not (self.gtol > 0 and self.maxiter >= 0):
            raise FewcellError("The BFGS tolerance must be positive and its iterations 0 or more.")
