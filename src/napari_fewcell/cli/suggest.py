"""``fewcell suggest``: rank tiles by what a model would learn from them (what to annotate next, paper 001)."""
from __future__ import annotations

import sys
from pathlib import Path

from .args import add_images, add_run_options, field_option
from .bar import Bar


def add_parser(sub) -> None:
    from ..engine.suggest.params import MODEL_SCORE, SessionParams
    from ..engine.suggest.params import SuggestParams as SuggestDefaults

    g = sub.add_parser("suggest", help="rank tiles by what a model would learn from them (what to annotate next)",
                       description=cmd_suggest.__doc__)
    add_images(g, "images or stacks (every plane is a candidate)")
    field_option(g, "--tile", SuggestDefaults, "tile", "tile side in pixels")
    field_option(g, "--top", SuggestDefaults, "top", "how many tiles to suggest")
    field_option(g, "--score", SuggestDefaults, "score", default=None,
                 help=f"how tiles are scored (default: {SuggestDefaults.score}; {MODEL_SCORE} with --model, --network "
                 "or --pretext)")
    g.add_argument("--model", default=None, metavar="MODEL",
                   help="a perceptron (.npz, `fewcell fit`) or stage-2 network (.pt) that scores the tiles; a model "
                   "score without it reads a shipped network")
    g.add_argument("--json", required=True, metavar="OUT.json")
    g.add_argument("--network", default=None, help="shipped network a model score reads without --model (default: "
                   "fluo_nuclei for gray images, he_nuclei for colour; em_membrane for electron microscopy)")
    g.add_argument("--pretext", action="store_true", help="first adapt the shipped network to the images on "
                   "pseudo-labels (histogram equalisation + Otsu threshold + 3×3 dilation; paper 001 §3.2)")
    field_option(g, "--pretext-steps", SessionParams, "pretext_steps")
    field_option(g, "--scale", SuggestDefaults, "scale", type=int,
                 help="score tiles at 1/SCALE resolution (default: 2, or 3 with a perceptron as --model; 1 = full "
                 "resolution, about 4× slower than 2)")
    field_option(g, "--magnitude", SuggestDefaults, "magnitude",
                 help="brightness and sharpness factor of the consistency score")
    add_run_options(g, cmd_suggest, "replace an existing OUT.json")


def cmd_suggest(a) -> int:
    """Cut the images into square tiles, score each and write the best, best first, as JSON: [{"rank", "image", "box":
    [y, x, h, w], "score"}, ...]. By default a tile of each kind of texture, no model needed (coverage); with --model
    the fitted model's consistency (paper 001), and with a model score but no --model the shipped network's.
    """
    import json

    from ..engine import suggest as sg
    from ..engine.core.files import atomic_write, check_file_target
    from ..engine.core.progress import run

    params = sg.SuggestParams(tile=a.tile, top=a.top, score=score_of(a), scale=a.scale, magnitude=a.magnitude,
                              seed=a.seed, device=a.device)
    params.check()
    out = check_file_target(a.json, a.overwrite, f"--json {a.json}")
    planes, where, names = _read_planes(a.images)
    request = sg.SuggestRequest(planes, names, params, a.model, a.network, a.pretext, a.pretext_steps)
    result = run(sg.suggest_job(request), Bar("suggest"))  # the job checks the request before any model loads
    for h in result.hits:
        print(f"{h.rank}. {names[h.image]} box {' '.join(map(str, h.box))} score {h.score:.4f}", file=sys.stderr)
    text = json.dumps(result.rows(where), indent=2) + "\n"
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    print(out)
    return 0


def score_of(a) -> str:
    """The score asked for; else, when a model or a shipped network is named (``--model``, ``--network``,
    ``--pretext``), the model's score, and otherwise the default one."""
    from ..engine.suggest.params import MODEL_SCORE, SuggestParams

    return a.score or (MODEL_SCORE if a.model or a.network or a.pretext else SuggestParams.score)


def _read_planes(paths: list[str]):
    """Every plane of every image, where it came from ([(path, plane or None)]) and its display name."""
    from ..engine.core.files import read_image
    from ..engine.core.image import planes_of

    planes, where = [], []
    for path in paths:
        pl, stack = planes_of(read_image(path), Path(path).name)
        planes += pl
        where += [(path, z if stack else None) for z in range(len(pl))]
    names = [Path(p).name + ("" if z is None else f" plane {z}") for p, z in where]
    return planes, where, names
