#!/usr/bin/env python
"""Which of the generic filters the forest and fused paths should read (issue 20): bench_generalise.py run with
``prompt/filters.forest_features`` replaced by a variant of the filter bank, so that the forest and fused paths
(and the self-check that chooses between attention and the fused path) read the variant; the RF baseline keeps the
full ilastik bank (common.RFBaseline calls skimage itself). Per Gaussian scale σ ∈ {1, 2, 4, 8, 16} the bank has
four maps: the smoothed intensity, its gradient magnitude and the two Hessian eigenvalues.

Variants (--variant):
  all       the full bank (the forests' bank until 2026-12-06)
  fine      the smoothed intensity kept at σ 1 and 2, zeroed at σ 4, 8, 16 (the coarse brightness of the surroundings)
  nosmooth  the smoothed-intensity maps zeroed at every scale (edges and Hessians only)
  dog       each smoothed map minus the σ 16 one (differences of Gaussians: brightness against the surroundings,
            blind to an offset of the whole image), σ 16's own map zeroed
  sigma1    the smoothed intensity kept at σ 1 only
  mid       the smoothed intensity kept at σ 1, 2 and 4 (the bank the forests read since 2026-12-06, the maps
            dropped instead of zeroed: prompt/filters.SMOOTH_SIGMA_MAX)

A zeroed map is a constant: the forest never splits on it. ``--bench partial`` runs bench_partial.py instead of
bench_generalise.py (workflow 2: one-shot from every train image's box, the pseudo-labels and stage 2 read the
variant). Every other argument is the benchmark's:

    python benchmarks/studies/study_filter_set.py --variant dog --data ../shared/data --folds ... --weights ... \
        --split val --boxes 4 --max-test 3 --paths none fuse auto --no-end-to-end --out results/filters_dog_val.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_generalise and common.py

import numpy as np

from napari_fewcell.engine.prompt import adapt, filters

KEEP_SMOOTH = {"all": (0, 1, 2, 3, 4), "nosmooth": (), "fine": (0, 1), "sigma1": (0,), "dog": (0, 1, 2, 3),
               "mid": (0, 1, 2)}


def variant_features(name: str):
    """A ``forest_features`` that returns the bank of variant ``name`` (the full bank, some maps zeroed)."""

    def features(x: np.ndarray) -> np.ndarray:
        f = filters.luminance_features(x)
        smooth = f[..., 0::4]  # a view: (h, w, scales)
        if name == "dog":
            smooth -= smooth[..., -1:].copy()
        for i in range(smooth.shape[-1]):
            if i not in KEEP_SMOOTH[name]:
                smooth[..., i] = 0
        return f

    return features


def use_features(features) -> None:
    """Make the forest and fused paths (fitting, the self-check and segmenting) read ``features``'s bank."""
    filters.forest_features = features  # window_features (segmenting) reads the module's name
    adapt.forest_features = features  # box_features (fitting and the self-check) imported it


def take_option(argv: list[str], option: str, default: str) -> str:
    """The value of ``option`` in ``argv`` (removed from it), or ``default``."""
    if option not in argv:
        return default
    i = argv.index(option)
    value = argv[i + 1]
    del argv[i : i + 2]
    return value


#: the benchmarks a study may run with its change in place (the module of each)
BENCHES = {"generalise": "bench_generalise", "partial": "bench_partial", "shipped": "study_shipped_default"}


def study_options(prog: str, option: str, choices, default: str,
                  benches: tuple[str, ...] = ("generalise",)) -> tuple[list[str], str, str]:
    """A study's command line: (the arguments left for the benchmark, the value of ``option``, the benchmark of
    ``--bench``, default generalise); one sentence and exit 2 when either is not among its choices."""
    argv = sys.argv[1:]
    name = take_option(argv, option, default)
    bench = take_option(argv, "--bench", "generalise") if len(benches) > 1 else benches[0]
    if name not in choices:
        sys.exit(f"{prog}: error: {option} must be one of {', '.join(choices)}")
    if bench not in benches:
        sys.exit(f"{prog}: error: --bench must be {' or '.join(benches)}")
    return argv, name, bench


def run_bench(bench: str, argv: list[str], note: str) -> None:
    """Run the benchmark ``bench`` (a key of :data:`BENCHES`) with the arguments ``argv`` and a line for its report
    saying what the study changed."""
    import importlib

    sys.argv = [sys.argv[0], *argv, "--note", note]
    importlib.import_module(BENCHES[bench]).main()


def run_fit_study(prog: str, option: str, variants: dict, default: str, fit_with, note) -> None:
    """A study of the final forest's fit: ``adapt.fit_path`` replaced by ``fit_with(variants[name])`` for the variant
    ``name`` of ``option``, then the benchmark of ``--bench`` (bench_generalise, or the shipped weights in-domain) run
    with a line ``note(name)`` in its report."""
    argv, name, bench = study_options(prog, option, variants, default, ("generalise", "shipped"))
    adapt.fit_path = fit_with(variants[name])
    run_bench(bench, argv, note(name))


def main() -> None:
    argv, name, bench = study_options("study_filter_set", "--variant", KEEP_SMOOTH, "all", ("generalise", "partial"))
    use_features(variant_features(name))
    run_bench(bench, argv, f"study_filter_set.py --variant {name}: the forest and fused paths read the filter bank "
              f"'{name}' (the RF baseline keeps the full bank)")


if __name__ == "__main__":
    main()
