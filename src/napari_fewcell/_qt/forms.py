"""The dock widgets' settings forms, made by magicgui from the parameter dataclasses' fields (:class:`ParamsForm`),
and small Qt layout helpers: rows and columns of widgets, a form."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from magicgui.widgets import CheckBox, ComboBox, Container, Widget, create_widget
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLayout, QVBoxLayout, QWidget

from ..engine.core.options import INSTANCE_METHODS, choices_of, field_of

#: the choices of an "Output" / "Export as" field: class labels (None), or one label per object by a method
LABEL_OUTPUTS = [("classes", None), *((f"instances ({method})", method) for method in INSTANCE_METHODS)]


def field_widget(cls, name: str) -> Widget:
    """The magicgui widget of a dataclass field (``engine/core/options.option``): its default, label, help as the
    tooltip, choices as a combo box (the words shown, the value kept), a bool as a check box, a number as a spin box
    with the field's range."""
    field = field_of(cls, name)
    meta = field.metadata
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    label = meta.get("label") or name.replace("_", " ").capitalize()
    if meta.get("choices"):
        widget = ComboBox(name=name, label=label, choices=[(words, value) for value, words in choices_of(field)],
                          value=default)
    elif isinstance(default, bool):
        widget = CheckBox(name=name, label=label, text="", value=default)
    else:
        widget = create_widget(value=default, annotation=type(default), name=name, label=label,
                               options=dict(meta.get("widget") or {}))
    widget.tooltip = meta.get("help") or None
    return widget


class ParamsForm(Container):
    """A form of parameter fields, ``(dataclass, field name)`` each (a name shared by two dataclasses is one widget),
    or ready magicgui widgets; :meth:`values` gives the keyword arguments of one dataclass."""

    def __init__(self, items: Sequence[tuple[type, str] | Widget]):
        super().__init__(widgets=[field_widget(*it) if isinstance(it, tuple) else it for it in items], labels=True)
        self.native.layout().setContentsMargins(0, 0, 0, 0)

    def values(self, cls) -> dict:
        names = {w.name for w in self}
        return {f.name: self[f.name].value for f in dataclasses.fields(cls) if f.name in names}


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
