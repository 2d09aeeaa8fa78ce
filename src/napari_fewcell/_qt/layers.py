"""Shared by the dock widgets: keeping layer choices current (layer-list events, combo boxes, the
image-rows panel), the constants the widgets share, and how fewcell's layers look. Geometry is in geometry.py,
layout helpers in forms.py."""
from __future__ import annotations

from typing import Callable

import numpy as np
from magicgui.widgets import CheckBox, ComboBox
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QGridLayout,
    QGroupBox,
)

from .geometry import image_shape, layer_data, shape2d

RESULT_KEY = "fewcell_result"  # metadata flag of result layers (never auto-picked as annotation labels)
BOX_SIZE = 64  # side of the box the Add-box buttons place
OWN_SUFFIXES = ("labels", "prompt labels")  # "<image> labels" / "<image> prompt labels" belong to <image>


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


class LayerPicker(ComboBox):
    """A magicgui combo box of layers: its value is a layer of the viewer (or None, shown as ``placeholder``). The
    widget refills it (:meth:`refill`) whenever layers change; it keeps its choice while that layer is there."""

    def __init__(self, placeholder: str | None = None, tooltip: str | None = None):
        self.placeholder, self.layers = placeholder, []
        # choices as a function: magicgui asks it again whenever it resets them (e.g. when the widget is shown)
        super().__init__(choices=self.items, tooltip=tooltip)

    def items(self, widget=None) -> list[tuple[str, object]]:
        return ([(self.placeholder, None)] if self.placeholder else []) + [(lay.name, lay) for lay in self.layers]

    def refill(self, layers: list, prefer: list) -> None:
        """The choices ``layers``; the current layer if still among them, else the first of ``prefer`` (else the
        placeholder, or the first layer). Refilling says nothing (no ``changed``): only a user's choice does."""
        current = self.value
        with self.changed.blocked():
            self.layers = list(layers)
            self.reset_choices()
            keep = any(current is lay for lay in layers) or (current is None and self.placeholder and not prefer)
            if self.choices:
                self.value = current if keep else (prefer[0] if prefer else self.choices[0])

    @property
    def layer(self):
        """The chosen layer, or None (the placeholder, or nothing to choose)."""
        return self.value

    @property
    def text(self) -> str:
        """What the box shows."""
        return self.native.currentText()

    @property
    def shown(self) -> list[str]:
        """Every entry's text, in order."""
        return [self.native.itemText(k) for k in range(self.native.count())]

    def pick(self, text: str) -> None:
        """Choose the entry shown as ``text``, as a user does."""
        i = self.native.findText(text)
        if i < 0:
            raise ValueError(f"{text!r} is not among the choices {self.shown}")
        self.native.setCurrentIndex(i)


def named_layer(viewer, name: str, kind):
    """The layer called ``name`` if it is there and of type ``kind``, else None."""
    layer = viewer.layers[name] if name in viewer.layers else None
    return layer if isinstance(layer, kind) else None


def annotation_labels(layers) -> list:
    """The Labels layers that can annotate an image (not the plugin's own results)."""
    return [lay for lay in layers if isinstance(lay, Labels) and not lay.metadata.get(RESULT_KEY)]


# ---- the image-rows panel
UNSET = object()  #: no labels chosen by the user yet


class ImageRow:
    """One image of an image-rows panel: use it (a magicgui check box) and its annotation labels (a
    :class:`LayerPicker`)."""

    def __init__(self, layer, check: CheckBox, picker: LayerPicker):
        self.layer, self.check, self.labels = layer, check, picker
        #: the labels layer the user chose (None: the placeholder), kept across rebuilds; UNSET: none chosen yet
        self.user_choice: object = UNSET


class ImageRows(QGroupBox):
    """A row per Image layer of ``viewer``: a checkbox to use it and a combobox of the Labels layers of
    its shape, rebuilt whenever the layer list changes.

    ``pick(image, options, owners)`` names the labels picked by default (None: the ``placeholder``);
    ``owners`` maps "<image> labels" / "<image> prompt labels" to the image named so. A labels choice
    made by the user is kept across rebuilds. With ``follow_labels`` choosing labels checks the row
    (the placeholder unchecks it) and a row is checked when it has labels, unless the user unchecked it
    while its labels stayed; without, a row keeps its check and a new one is checked unless it is a result.
    """

    def __init__(self, viewer, title: str, placeholder: str, pick: Callable[[Image, list[str], dict], str | None],
                 follow_labels: bool = False):
        super().__init__(title)
        self.viewer, self.grid = viewer, QGridLayout(self)
        self.placeholder, self.pick, self.follow_labels = placeholder, pick, follow_labels
        self.rows: dict[str, ImageRow] = {}  # by image name; the same dict, refilled by every refresh
        watch_layers(viewer, self.refresh)

    def refresh(self) -> None:
        """Rebuild the rows from the viewer's layers."""
        layers = list(self.viewer.layers)
        images = [lay for lay in layers if isinstance(lay, Image)]
        labels = annotation_labels(layers)
        owners = {f"{img.name} {suffix}": img.name for img in images for suffix in OWN_SUFFIXES}
        old = self._clear()
        for i, img in enumerate(images):
            prev = next((r for r in old if r.layer is img), None)
            options = [lab for lab in labels if layer_data(lab).shape == image_shape(img)]
            row = ImageRow(img, CheckBox(text=img.name), LayerPicker(self.placeholder))
            if prev and (prev.user_choice is None or any(prev.user_choice is o for o in options)):
                row.user_choice = prev.user_choice
            named = self.pick(img, [o.name for o in options], owners)
            default = next((o for o in options if o.name == named), None)
            row.labels.refill(options, [row.user_choice if row.user_choice is not UNSET else default])
            row.check.value = self._checked(row, prev)
            row.labels.changed.connect(lambda layer, r=row: self._chose(r, layer))
            self.grid.addWidget(row.check.native, i, 0)
            self.grid.addWidget(row.labels.native, i, 1)
            self.rows[img.name] = row

    def _checked(self, row: ImageRow, prev: ImageRow | None) -> bool:
        if not self.follow_labels:
            return prev.check.value if prev else not row.layer.metadata.get(RESULT_KEY)
        # the checkbox keeps the user's choice while the labels stay; new labels check the image
        if prev is not None and prev.labels.layer is row.labels.layer:
            return prev.check.value
        return row.labels.layer is not None

    def _chose(self, row: ImageRow, layer) -> None:
        row.user_choice = layer
        if self.follow_labels:
            row.check.value = layer is not None

    def _clear(self) -> list[ImageRow]:
        """Remove the rows and their widgets; returns the old rows."""
        old = list(self.rows.values())
        for row in old:
            row.labels.changed.disconnect()  # a combo box being deleted is no choice of the user's
            for w in (row.check.native, row.labels.native):
                self.grid.removeWidget(w)
                w.deleteLater()
        self.rows.clear()
        return old

    def checked(self) -> list[ImageRow]:
        """The checked rows whose image is still in the viewer."""
        return [r for r in self.rows.values() if r.check.value and r.layer in self.viewer.layers]


# ---- how fewcell's layers look
BOX_COLOR = "lime"  #: the prompt box's edge: stands out on dark fluorescence and on pink/purple H&E alike


def box_edge(image) -> float:
    """The prompt box's edge width (data pixels): 2 px, more for a large image, so that the box stays visible at the
    view that fits the whole image (about 1/300 of its larger side)."""
    return float(max(2, round(max(shape2d(image)) / 300)))


def result_colormap(image):
    """The colour of a one-class result: cyan over a colour (RGB) image, yellow over a gray one; the default
    dark red blends into H&E's purple."""
    from napari.utils.colormaps import DirectLabelColormap

    shape = np.shape(image)
    rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: "cyan" if rgb else "yellow"})
