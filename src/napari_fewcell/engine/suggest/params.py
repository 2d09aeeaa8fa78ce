"""The parameters of workflow 4, each with its default, shared by the widget, the CLI and the API: tile suggestions
(:class:`SuggestParams`, and the scores it may name), the pretext task (:class:`PretextParams`) and the suggest →
accept → refit session (:class:`SessionParams`)."""
from __future__ import annotations

import dataclasses

from ..core.errors import FewcellError
from ..core.options import DEVICES, check_numbers, check_seed, option

SCORES = ("consistency", "entropy", "mc-dropout", "random", "coverage")
NO_MODEL = ("random", "coverage")  #: scores that need no model
#: the score of a fitted model given to ``fewcell suggest --model`` without ``--score`` (paper 001's)
MODEL_SCORE = "consistency"


@dataclasses.dataclass
class SuggestParams:
    tile: int = option(256, "Tile size", "Side of the square tiles, in pixels.", min=16, max=4096)
    top: int = option(5, "Suggestions", "How many tiles to suggest at a time.", min=1, max=100)
    #: "coverage" since 2026-12-06: in the suggest → accept → refit loop on validation images of 7 leave-one-out folds
    #: it was above random's mean by +1.00 on average at 3 and 5 tiles over 3 seeds, the refitted model's consistency by
    #: +0.59 (at worst −8 to −9 for both); on the test images the two were level (+0.66 / +0.62; at worst −2.9 / −5.1),
    #: and on ISBI's and DSB fluorescence's coverage was the better at 3 and 5 tiles (benchmarks/bench_suggest.py;
    #: docs/benchmarks/suggest.md, "Coverage, the default")
    score: str = option("coverage", "Score", "coverage (default): one tile per kind of texture in the images, new "
                        "kinds first, no model needed; consistency: the model's predictions change under "
                        "auto-contrast, brightness and sharpness (paper 001); entropy; MC-dropout; random.", SCORES)
    #: tiles are scored at 1/scale resolution (1 = full resolution; never below 16 px a side). None: the model's own
    #: (``Scorer.scale``: 1/2, a perceptron 1/3)
    scale: int | None = None
    magnitude: float = 1.3  #: brightness and sharpness factor of the consistency score (paper: 1.3)
    passes: int = 10  #: MC-dropout forward passes
    dropout: float = 0.5  #: MC-dropout probability
    batch: int = 16  #: tiles per forward pass
    #: once tiles are annotated (or skipped), a model score picks first among the kinds of tile (coverage groups)
    #: none of them belongs to, so that it does not keep asking for more of one kind (docs/benchmarks/: +0.9 on
    #: average where it moves over ISBI and DSB, validation and test; never more than 0.1 below the plain score)
    diverse: bool = option(True, "New kinds of tile first", "After an Accept or Skip, suggest first from the kinds "
                           "of tile (by texture) that no annotated or skipped tile belongs to.")
    seed: int = 0  #: of the random score and of MC-dropout
    device: str = option("auto", "Device", "Where the networks run.", DEVICES)

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        if self.score not in SCORES:
            raise FewcellError(f"There is no score named {self.score!r}; choose one of {', '.join(SCORES)}.")
        if self.tile < 16:
            raise FewcellError(f"A tile of {self.tile} pixels is too small; use tiles of 16 pixels or more.")
        if self.top < 1:
            raise FewcellError("Ask for at least one suggestion (top 1 or more).")
        if self.scale is not None and self.scale < 1:
            raise FewcellError(f"The scale must be 1 (full resolution) or more, not {self.scale}.")
        if not self.magnitude > 0:
            raise FewcellError(f"The augmentation magnitude must be a positive number, not {self.magnitude}.")
        if self.passes < 2 or not 0 < self.dropout < 1:
            raise FewcellError("MC-dropout needs at least 2 passes and a dropout probability between 0 and 1.")
        if self.batch < 1:
            raise FewcellError("The batch must hold at least one tile.")


@dataclasses.dataclass
class PretextParams:
    steps: int = 60
    batch: int = 8
    crop: int = 96
    lr: float = 5e-4  #: Adam (paper: 1e-4 over 100 epochs; fewer steps here, so a larger rate)
    weight_decay: float = 5e-4  #: paper 001 §4.1
    seed: int = 0

    def check(self) -> None:
        check_numbers(self)
        check_seed(self.seed)
        if self.steps < 1 or self.batch < 1 or self.crop < 16 or not self.lr > 0:
            raise FewcellError("Pretext training needs steps ≥ 1, batch ≥ 1, crops of 16 px or more and a "
                               "positive learning rate.")


MODEL_CHOICES = (("perceptron", "perceptron on MSD features (workflow 3)"), ("prompt", "prompt segmenter (workflow 1)"))
MODELS = tuple(value for value, _ in MODEL_CHOICES)  #: values of ``SessionParams.model``
SCORER_CHOICES = (("model", "the refitted model"), ("network", "the first network (fixed, as paper 001)"))
SCORERS = tuple(value for value, _ in SCORER_CHOICES)  #: values of ``SessionParams.score_with``


@dataclasses.dataclass
class SessionParams:
    model: str = option("perceptron", "Model", "The model refitted after each Accept, on every tile accepted so far.",
                        MODEL_CHOICES)
    suggest: SuggestParams = dataclasses.field(default_factory=SuggestParams)
    network: str | None = None  #: shipped network scored before the first accept (None: by image kind)
    pretext: bool = option(False, "Adapt it to the images first (pretext task, ~1 min)",
                           "Paper 001 §3.2: the first network learns the images' own structure before it scores.")
    pretext_steps: int = PretextParams.steps
    #: what scores the tiles once a model is fitted: "model" (the refitted model, the default) or
    #: "network" (always the shipped network, as paper 001's Algorithm 1 with a fixed scoring model)
    score_with: str = option("model", "Score with", "After the first Accept, tiles are scored by the refitted model "
                             "(default) or still by the first network.", SCORER_CHOICES)
    device: str = option("auto", "Device", "Where the networks run.", DEVICES)
    #: MiB for the perceptron's features of the tiles being scored (float16), kept between rounds so that a rescore
    #: after a refit is one projection (Session.prepare_iter fills it while the user paints); the four versions of
    #: every tile of a 2048² image take about 0.43 GiB at the perceptron's 1/3 resolution (1 GiB at 1/2). 0: nothing
    #: kept
    tile_memory: int = 1024

    def check(self) -> None:
        check_numbers(self)
        if self.tile_memory < 0:
            raise FewcellError(f"The memory for tile features must be 0 MiB or more, not {self.tile_memory}.")
        if self.model not in MODELS:
            raise FewcellError(f"The model must be one of {', '.join(MODELS)}, not {self.model!r}.")
        if self.score_with not in SCORERS:
            raise FewcellError(f"Tiles are scored with one of {', '.join(SCORERS)}, not {self.score_with!r}.")
        self.suggest.check()
