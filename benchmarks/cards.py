"""What a weights file was pre-trained on, from its card: the check that a fold's weights never saw the fold (the
benchmarks' leave-one-data-set-out figures rest on it)."""
from __future__ import annotations

import sys


def weights_card(path) -> dict:
    """The card of an embedding-weights file (``{}`` when it has none); one line and exit if it is unreadable."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the cause, the same one-line refusal
        sys.exit(f"{path} is not a readable weights file ({str(err).splitlines()[0]})")
    return (payload.get("card") or {}) if isinstance(payload, dict) else {}


def card_chain(card: dict) -> list[dict]:
    """A card, then the card of the weights it was initialised from (``init_card``), and so on."""
    chain = []
    while isinstance(card, dict) and card:
        chain.append(card)
        card = card.get("init_card")
    return chain


def seen_images(card: dict) -> dict[str, set[str]] | None:
    """Task (``SET`` or ``SET:FOLDER``) → ids of the images trained on, over the card's whole init chain;
    None when a card of the chain does not list its training images."""
    seen: dict[str, set[str]] = {}
    for c in card_chain(card):
        images = c.get("training_images")
        if not isinstance(images, dict):
            return None
        for task, ids in images.items():
            seen.setdefault(task, set()).update(map(str, ids))
    return seen


def held_out(task: str, fold: str) -> bool:
    """Whether a training task (``SET`` or ``SET:FOLDER``) touches a fold: any task of the fold's set, or for a
    class-out fold ``SET:FOLDER`` the task of that folder (``SET`` itself is ``SET:labels``)."""
    (tset, _, tfolder), (fset, _, ffolder) = task.partition(":"), fold.partition(":")
    return tset == fset and (not ffolder or (tfolder or "labels") == ffolder)


def unseen(card: dict, fold: str) -> tuple[bool, str]:
    """(whether the weights never trained on the fold, a line saying what was checked and found)."""
    seen, n_cards = seen_images(card), len(card_chain(card))
    scope = "`training_images` of the card" + (f" and its {n_cards - 1} init card(s)" if n_cards > 1 else "")
    if seen is None:
        return False, f"{scope}: not recorded, so nothing shows the fold was held out"
    hits = {t: len(ids) for t, ids in seen.items() if held_out(t, fold) and ids}
    what = f"the task {fold}" if ":" in fold else f"any task of the set {fold}"
    found = ", ".join(f"{t} ({n} images)" for t, n in hits.items())
    return not hits, f"{scope} searched for {what}: " + (f"found {found}" if hits else "none → LODO")
