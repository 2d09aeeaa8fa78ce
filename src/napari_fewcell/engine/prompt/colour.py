"""A colour prompt with gray images, or a gray prompt with colour images: both are then read as gray.

Measured on the DSB 2018 H&E and fluorescence sets (benchmarks/bench_colour.py → benchmarks/results/colour.md):
reading the colour side as its luminance gave 91.7 mean Dice over the four mismatches, against 82.9 for
keeping the colour and repeating the gray image to 3 channels. The faces (CLI, widget) call
:func:`colour_plan` before any work, set ``PromptParams.luminance`` and say so in one sentence.
"""
from __future__ import annotations

from typing import Sequence


def colour_plan(prompt_colour: bool, colours: Sequence[bool], names: Sequence[str]) -> tuple[bool, str | None]:
    """(read everything as luminance, the sentence saying so) for a prompt image of kind ``prompt_colour`` and
    images of kinds ``colours`` named ``names``; (False, None) when every image is of the prompt's kind."""
    odd = [n for n, c in zip(names, colours) if c != prompt_colour]
    if not odd:
        return False, None
    kind, other = ("colour", "gray") if prompt_colour else ("gray", "colour")
    which = "the image" if len(colours) == 1 else f"{len(odd)} of the {len(colours)} images"
    shown = ", ".join(odd[:3]) + (", …" if len(odd) > 3 else "")
    verb = "is" if len(colours) == 1 else "are"
    return True, (f"the prompt image is {kind} but {which} ({shown}) {verb} {other}: the prompt and every image are "
                  "read as gray (their luminance), which segments mixed kinds better than keeping the colour")
