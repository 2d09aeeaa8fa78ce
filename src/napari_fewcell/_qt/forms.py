"""Small Qt layout helpers the dock widgets share: a spin box, rows and columns of widgets, a form."""
from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLayout, QSpinBox, QVBoxLayout, QWidget


def spin_box(lo: int, hi: int, value: int, special: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setSpecialValueText(special)  # shown at the minimum
    return spin


def hlayout(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


def hbox(*widgets) -> QWidget:
    """``widgets`` side by side in one widget (no margins), e.g. for a form row."""
    box = QWidget()
    row = hlayout(*widgets)
    row.setContentsMargins(0, 0, 0, 0)
    box.setLayout(row)
    return box


def form_rows(*rows) -> QFormLayout:
    """A form with a row per entry: ``(label, widget or layout)``, or a widget spanning the row."""
    form = QFormLayout()
    for row in rows:
        if isinstance(row, tuple):
            form.addRow(*row)
        else:
            form.addRow(row)
    return form


def vbox(owner: QWidget, *parts, stretch: bool = True) -> QVBoxLayout:
    """Lay ``owner`` out top to bottom: ``parts`` (widgets or layouts), then a stretch unless told not to."""
    layout = QVBoxLayout(owner)
    for part in parts:
        if isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    if stretch:
        layout.addStretch(1)
    return layout
