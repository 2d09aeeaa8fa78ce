"""Print a Markdown table of pre-training runs from their weights files' cards (for docs/models.md):
strategy, what was left out, the init, steps, CPU and wall seconds, final loss.

    python scripts/runs_table.py benchmarks/weights/*.pt
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch


def row(path: str) -> str:
    card = torch.load(path, weights_only=True)["card"]
    p = card.get("params", {})
    init = Path(p["init"]).name if p.get("init") else "random"
    steps = card.get("steps_done", p.get("steps"))
    cpu = f"{card['cpu_seconds']:,.0f}" if "cpu_seconds" in card else "—"
    budget = f" (budget {p['cpu_minutes']:g} min)" if p.get("cpu_minutes") else ""
    excluded = ", ".join(card.get("excluded") or []) or "nothing"
    loss = card.get("final_loss")
    return (f"| `{Path(path).name}` | {card.get('strategy', '?')} | {excluded} | {init} | {steps:,} | {cpu}{budget} "
            f"| {card.get('wall_seconds', 0):,.0f} | {loss:.3f} |" if loss is not None else "| — |")


def main() -> None:
    print("| weights | strategy | left out | init | steps | CPU s | wall s | final running loss |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        print(row(path))


if __name__ == "__main__":
    main()
