"""The weights of a leave-one-data-set-out benchmark: which fold and strategy each file is for, the check of its card
that it never saw its fold (refused otherwise, unless --allow-seen), and the lines a report says of them."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from cards import card_chain, unseen, weights_card
from common import sha12

from napari_fewcell.engine.nets.unet import default_weights_path


@dataclasses.dataclass
class Weights:
    fold: str
    strategy: str
    path: str
    card: dict
    lodo: bool = True
    checked: str = ""

    @property
    def label(self) -> str:
        return self.strategy + ("" if self.lodo else " (NOT LODO)")


# ---- weights: which fold, which strategy, and did they see the fold? ---------------------------------
def check_weights(w: Weights) -> str | None:
    """Fill ``w.lodo`` / ``w.checked``; return the refusal when the weights saw the fold (or do not say)."""
    w.lodo, w.checked = unseen(w.card, w.fold)
    if w.lodo:
        return None
    return (f"{w.path} (fold {w.fold}) is not leave-one-data-set-out: {w.checked}. Give weights pre-trained with "
            f"`--exclude {w.fold}`, or pass --allow-seen for a smoke test (the report then says NOT LODO).")


def parse_weights(args) -> dict[str, list[Weights]]:
    """--weights FOLD[@STRATEGY]=PATH → fold → weights; folds without any get the shipped weights only with
    --allow-seen (and --quick); weights that saw their fold are refused unless --allow-seen."""
    out: dict[str, list[Weights]] = {f: [] for f in args.folds}
    for item in args.weights:
        spec, sep, path = item.partition("=")
        fold, _, strategy = spec.partition("@")
        if not sep or fold not in out:
            sys.exit(f"bench_generalise: error: --weights {item}: expected FOLD[@STRATEGY]=PATH with FOLD one of "
                     f"--folds ({', '.join(args.folds)})")
        if not Path(path).is_file():
            sys.exit(f"bench_generalise: error: --weights {item}: no such file {path}")
        card = weights_card(path)
        strategy = strategy or str(card.get("strategy", Path(path).stem))
        if any(w.strategy == strategy for w in out[fold]):
            sys.exit(f"bench_generalise: error: two --weights {fold}@{strategy}: give each a distinct @STRATEGY")
        out[fold].append(Weights(fold, strategy, path, card))
    for fold, ws in out.items():
        if not ws and args.allow_seen:
            ws.append(Weights(fold, "shipped", str(default_weights_path()), weights_card(default_weights_path())))
        elif not ws:
            sys.exit(f"bench_generalise: error: no --weights {fold}=PATH (weights pre-trained without {fold}); "
                     "--allow-seen uses the shipped weights instead, labelled NOT LODO where they saw the fold")
    refusals = [r for ws in out.values() for w in ws if (r := check_weights(w))]
    if refusals and not args.allow_seen:
        sys.exit("bench_generalise: error: " + " ".join(refusals))
    return out


def weights_lines(weights: dict[str, list[Weights]]) -> list[str]:
    lines = []
    for ws in weights.values():
        for w in ws:
            c = w.card
            walls = [x.get("wall_seconds") for x in card_chain(c)]
            lines.append(
                f"- fold {w.fold}, {w.strategy}: `{w.path}` (sha256 {sha12(w.path)}); card: strategy "
                f"{c.get('strategy', 'not recorded')}, excluded {c.get('excluded', 'not recorded')}, wall_seconds "
                f"{walls[0] if walls else 'not recorded'}; checked {w.checked}"
                + ("" if w.lodo else " — **NOT LODO: these numbers are not the held-out figure**"))
    return lines
