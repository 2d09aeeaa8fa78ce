"""The ``fewcell`` command's contract: every verb's ``--help`` (names, flags, choices, defaults) is kept byte for
byte (issue 23: the options come from the engine's parameter dataclasses), and ``--help`` needs no torch.

After adding an option on purpose, write the new texts with ``python tests/test_cli_contract.py`` and review the
diff: a removed or renamed flag breaks users' scripts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HELP = Path(__file__).resolve().parent / "data" / "cli_help"
VERBS = ["segment", "pseudolabel", "fit", "predict", "suggest", "pretrain", "pretrain-bank", "train-extractor"]
COLUMNS = "120"


def help_texts() -> dict[str, str]:
    """Every verb's --help, and the command's own (key ""), at a fixed terminal width."""
    import os

    os.environ["COLUMNS"] = COLUMNS  # argparse wraps to the terminal's width
    from napari_fewcell.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {"": parser.format_help(), **{verb: sub.choices[verb].format_help() for verb in VERBS}}


@pytest.mark.parametrize("verb", ["", *VERBS])
def test_help_is_unchanged(verb, monkeypatch):
    monkeypatch.setenv("COLUMNS", COLUMNS)
    kept = (HELP / f"{verb or 'fewcell'}.txt").read_text()
    assert help_texts()[verb] == kept, f"`fewcell {verb} --help` changed; see this module's docstring"


def test_help_needs_no_torch():
    """The parser of every verb and ``--help`` import no torch (0.14 s instead of 1.4 s)."""
    code = ("import sys, contextlib, io\nfrom napari_fewcell.cli import main\n"
            f"for verb in {VERBS!r} + [None]:\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        main([verb, '--help'] if verb else ['--help'])\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'skimage', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


if __name__ == "__main__":
    HELP.mkdir(parents=True, exist_ok=True)
    for verb, text in help_texts().items():
        (HELP / f"{verb or 'fewcell'}.txt").write_text(text)
    print(f"wrote {len(VERBS) + 1} help texts to {HELP}")


def test_option_defaults_are_the_dataclasses():
    """The options read their defaults from the parameter dataclasses (cli/args.field_option): one place."""
    from napari_fewcell.cli import build_parser
    from napari_fewcell.engine.fewshot.params import PerceptronParams
    from napari_fewcell.engine.partial.params import PseudoParams, TrainParams
    from napari_fewcell.engine.prompt.params import PromptParams
    from napari_fewcell.engine.suggest.params import SessionParams, SuggestParams

    parse = build_parser().parse_args
    seg = parse(["segment", "x.tif", "--prompt-image", "p.tif", "--prompt-labels", "l.tif", "--box", "0", "0", "8", "8",
                 "--out", "o"])
    assert (seg.attention, seg.prototypes, seg.adapt, seg.stroke_weight) == tuple(
        getattr(PromptParams(), n) for n in ("attention", "prototypes", "adapt", "stroke_weight"))
    pseudo = parse(["pseudolabel", "x.tif", "--labels", "l.tif", "--box", "0", "0", "8", "8", "--out", "o"])
    assert (pseudo.epochs, pseudo.steps_per_epoch, pseudo.lr, pseudo.patience, pseudo.adapt) == tuple(
        getattr(PseudoParams(), n) for n in ("epochs", "steps_per_epoch", "lr", "patience", "adapt"))
    assert (pseudo.train_steps, pseudo.train_init, pseudo.train_min_confidence) == (
        TrainParams().steps, TrainParams().init, TrainParams().min_confidence)
    fit = parse(["fit", "--support", "a.tif", "b.tif", "--out", "m.npz"])
    assert (fit.lam, fit.max_pixels, fit.intensity) == (PerceptronParams().lam, PerceptronParams().max_pixels,
                                                        PerceptronParams().intensity)
    from napari_fewcell.cli.suggest import score_of
    from napari_fewcell.engine.suggest.params import MODEL_SCORE

    sug = parse(["suggest", "x.tif", "--json", "o.json"])
    assert (sug.tile, sug.top, score_of(sug), sug.scale, sug.magnitude, sug.pretext_steps) == (
        *(getattr(SuggestParams(), n) for n in ("tile", "top", "score", "scale", "magnitude")),
        SessionParams().pretext_steps)
    assert score_of(parse(["suggest", "x.tif", "--json", "o.json", "--model", "m.npz"])) == MODEL_SCORE
