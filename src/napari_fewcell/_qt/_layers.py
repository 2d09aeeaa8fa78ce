"""Shared by the dock widgets: layer geometry (planes, boxes, world ↔ data coordinates), keeping
layer choices current (layer-list events, combo boxes, image rows) and small Qt helpers."""
from __future__ import annotations

from typing import Callable

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QSpinBox, QWidget

from ..engine.core.errors import FewcellError


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


# ---- layer geometry
def _data(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def _shape2d(layer) -> tuple[int, int]:
    shape = _data(layer).shape
    return tuple(shape[-3:-1] if getattr(layer, "rgb", False) else shape[-2:])


def _plane(layer, point) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2D plane of ``layer`` at the world ``point`` (viewer.dims.point) and its leading indices."""
    data, lead = _data(layer), layer.ndim - 2
    if lead <= 0:
        return np.asarray(data), ()
    pos = layer.world_to_data(point)
    idx = tuple(int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(pos[:lead], data.shape[:lead]))
    return np.asarray(data[idx]), idx


def _to_world(layer, yx, point) -> np.ndarray:
    """World (y, x) of the data (y, x) of ``layer``'s plane shown at ``point``."""
    data = np.array(layer.world_to_data(point), float)
    data[-2:] = yx
    return np.asarray(layer.data_to_world(data), float)[-2:]


def _from_world(layer, yx, point) -> np.ndarray:
    """Full data coordinates in ``layer`` of the world (y, x) on the plane shown at ``point``."""
    world = np.array(point, float)[-layer.ndim:]
    world[-2:] = yx
    return np.asarray(layer.world_to_data(world), float)


def _image_shape(layer) -> tuple[int, ...]:
    shape = _data(layer).shape
    return tuple(shape[:-1] if getattr(layer, "rgb", False) else shape)


def _planes(layer) -> list[np.ndarray]:
    """The 2D planes of an Image layer: one for a 2D (or RGB) image, Z for a Z×Y×X stack."""
    if layer.ndim not in (2, 3):
        raise FewcellError(f"The image '{layer.name}' has {layer.ndim} dimensions; use a 2D image or a Z×Y×X stack.")
    data = _data(layer)
    return [np.asarray(data)] if layer.ndim == 2 else [np.asarray(data[z]) for z in range(data.shape[0])]


def _as_planes(arr, stack: bool) -> np.ndarray:
    return np.asarray(arr) if stack else np.asarray(arr)[None]


def _rect(shapes, verts, image, point) -> tuple[int | None, tuple[int, int, int, int]]:
    """(plane index or None, (y, x, h, w)) in ``image``'s data of one shape (its bounding box)."""
    world = np.array([np.asarray(shapes.data_to_world(v), float) for v in np.asarray(verts, float)])
    n, k = image.ndim, min(image.ndim, world.shape[1])
    full = np.tile(np.array(point, float)[-n:], (len(world), 1))
    full[:, -k:] = world[:, -k:]
    data = np.array([np.asarray(image.world_to_data(w), float) for w in full])
    (y0, x0), (y1, x1) = np.round(data[:, -2:].min(0)), np.round(data[:, -2:].max(0))
    plane = int(round(data[0, 0])) if shapes.ndim >= 3 and n >= 3 else None
    return plane, (int(y0), int(x0), int(y1 - y0), int(x1 - x0))


# ---- Qt helpers
def _spin(lo: int, hi: int, value: int, special: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setSpecialValueText(special)  # shown at the minimum
    return spin


def _hbox(*widgets) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(w)
    return box


class _Row:
    """One image of the Images list: use it (checkbox) and its annotation labels (combobox)."""

    def __init__(self, layer, check: QCheckBox, combo: QComboBox):
        self.layer, self.check, self.labels = layer, check, combo
        self.user_choice: str | None = None  # a labels choice made by the user (kept across rebuilds)
