"""Keeping a widget's layer choices current: layer-list events and combo boxes."""
from __future__ import annotations

from typing import Callable

from qtpy.QtWidgets import QComboBox


def watch_layers(viewer, refresh: Callable[[], None]) -> None:
    """Call ``refresh()`` now and whenever a layer is added, removed, reordered or renamed."""

    def changed(event=None):
        if event is not None and getattr(event, "type", None) == "inserted":
            event.value.events.name.connect(changed)
        refresh()

    for name in ("inserted", "removed", "reordered"):
        getattr(viewer.layers.events, name).connect(changed)
    for layer in viewer.layers:
        layer.events.name.connect(changed)
    refresh()


def fill_combo(combo: QComboBox, names: list[str], placeholder: str | None, prefer: list[str]) -> None:
    """Refill ``combo``, keeping its choice if still there, else the first preferred name (else the placeholder)."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    if placeholder:
        combo.addItem(placeholder)
    combo.addItems(names)
    keep = current in names or (current == placeholder and not prefer)
    combo.setCurrentText(current if keep else (prefer[0] if prefer else placeholder or ""))
    combo.blockSignals(False)


def clear_rows(grid, rows: dict) -> list:
    """Remove the rows' widgets (``check`` and ``labels``) from ``grid``; returns the old rows."""
    old = list(rows.values())
    for row in old:
        for w in (row.check, row.labels):
            grid.removeWidget(w)
            w.deleteLater()
    return old
