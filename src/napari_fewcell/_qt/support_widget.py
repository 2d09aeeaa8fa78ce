"""Dock widget for workflow 3: a few support images (or boxes in one) → a perceptron on MSD features.

Qt and napari glue only; all image work is done by :mod:`napari_fewcell.engine`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Labels, Shapes
from qtpy.QtWidgets import QFileDialog, QWidget

from ..engine.core.errors import FewcellError
from ..engine.core.progress import Progress, relay, run
from ..engine.fewshot import FitRequest, Perceptron, PerceptronParams, fit_job, support
from ..engine.fewshot.features import Extractors
from .forms import ParamsForm, form_rows, hbox, vbox
from .geometry import as_planes, image_planes, image_shape, layer_data, plane_at, rect_of
from .jobs import capitalised, job_controls
from .layers import OWN_SUFFIXES, RESULT_KEY, ImageRows, LayerPicker, named_layer, watch_layers
from .lazy import CancelNote, OutputFolder, lazy_target, named, predict_lazy, written_text

NONE = "(none)"
RESULT_SUFFIX = "fewcell perceptron"
APPLY_MODES = [("current image (every plane of a stack)", "image"), ("current plane only", "plane"),
               ("all open images", "all")]


def _clip(box, shape):
    """The part of box (y, x, h, w) inside an image of ``shape``, or None."""
    y, x, h, w = box
    y0, x0, y1, x1 = max(0, y), max(0, x), min(shape[0], y + h), min(shape[1], x + w)
    return (y0, x0, y1 - y0, x1 - x0) if y1 > y0 and x1 > x0 else None


def _what(name: str, plane: int | None = None) -> str:
    """How the engine's sentences name an image layer (or one plane of a stack): "image 'a'", "image 's' (plane 2)";
    they read "The image 'a' is only 6×6 pixels…" (the widget capitalises a sentence that starts with it)."""
    return f"image '{name}'" + (f" (plane {plane})" if plane is not None else "")


def _missed(shapes, plane: int | None, rect, where: str) -> FewcellError:
    """The sentence for boxes that all clip to nothing on ``where`` (rather than reading it whole unasked)."""
    y, x, h, w = rect
    box = f"The box Y={y} X={x} H={h} W={w}" + (f" on plane {plane}" if plane is not None else "")
    what = f"has no height or width, so nothing of {where}" if h <= 0 or w <= 0 else f"lies outside {where}, so " \
        "nothing of it"
    return FewcellError(f"{box} in '{shapes.name}' {what} is marked as annotated; draw a rectangle over the labels you "
                        f"painted there, or set Boxes to {NONE} to read the whole image.")


def _plane_boxes(shapes, rects: list, z: int, shape, where: str) -> list:
    """The boxes of plane ``z`` (rects on it or on every plane, clipped to ``shape``); a sentence when rects lie on
    it but none holds a pixel of it."""
    mine = [(p, r) for p, r in rects if p is None or p == z]
    boxes = [b for b in (_clip(r, shape) for _, r in mine) if b]
    if mine and not boxes:
        raise _missed(shapes, *mine[0], where)
    return boxes


def _support_planes(image, labels, shapes, point) -> tuple[list, FewcellError | None]:
    """The support (AnnotatedImage) of each annotated plane of ``image`` with ``labels``, read inside the boxes of
    ``shapes`` on it (whole where it has none), and the sentence for boxes that all miss it (then it is read whole: the
    boxes may be another image's; the caller refuses when they miss every image); one sentence for labels of another
    shape."""
    stack, shape = image.ndim == 3, image_shape(image)
    if layer_data(labels).shape != shape:
        raise FewcellError(f"The labels '{labels.name}' are {'×'.join(map(str, layer_data(labels).shape))} but "
                           f"'{image.name}' is {'×'.join(map(str, shape))}; choose labels of its shape.")
    planes = image_planes(image)
    rects = [rect_of(shapes, v, image, point) for v in shapes.data] if shapes is not None else []
    hw, where = shape[-2:], f"the image '{image.name}' ({'×'.join(map(str, shape))})"
    missed = None
    if rects and not any(_clip(r, hw) for p, r in rects if p is None or 0 <= p < len(planes)):
        missed, rects = _missed(shapes, *rects[0], where), []  # every box lies outside the image (or is a line)
    data, lab_planes = [], as_planes(layer_data(labels), stack)
    for z, plane in enumerate(planes):
        lab = np.asarray(lab_planes[z])
        if stack and not lab.any():
            continue  # an all-0 plane of a stack is unannotated
        boxes = _plane_boxes(shapes, rects, z, hw, f"plane {z} of {where}" if stack else where)
        data.append(support(plane, lab, boxes, name=_what(image.name, z if stack else None)))
    return data, missed


def _own_labels(image, options: list[str], owners: dict) -> str | None:
    """The labels named after the image ("<image> labels" / "<image> prompt labels"), else None."""
    return next((n for n in options if n in [f"{image.name} {suffix}" for suffix in OWN_SUFFIXES]), None)


def _predict_all(model: Perceptron, items: list[dict]):
    """Predict every plane of every item; yields overall progress; returns one list of planes per item."""
    total, done, out = sum(len(it["planes"]) or 1 for it in items), 0, []
    yield Progress(0, total, "predicting")
    for it in items:
        if it.get("target") is not None:  # a big or lazy image: block by block into a new zarr array
            out.append((yield from relay(predict_lazy(model, it["target"]), named(it["name"]))))
            done += 1
            yield Progress(done, total, f"predicted {it['name']}")
            continue
        planes = []
        for z, plane in enumerate(it["planes"]):
            where = (z if it["index"] is None else it["index"]) if it["stack"] else None
            planes.append(run(model.predict_iter(plane, _what(it["name"], where))))  # progress is reported per plane
            done += 1
            where = f" plane {z + 1}/{len(it['planes'])}" if len(it["planes"]) > 1 else ""
            yield Progress(done, total, f"predicted {it['name']}{where}")
        out.append(planes)
    return out


class SupportWidget(QWidget):
    """Fit a perceptron on the MSD feature maps of a few labelled support images; apply it anywhere."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model: Perceptron | None = None
        self._fx: dict[str, Extractors] = {}  # per device: extractors with their feature cache (refits are fast)

        self.images = ImageRows(self.viewer, "Support images (checked) and their labels", NONE, _own_labels,
                                follow_labels=True)
        self.rows = self.images.rows  # the same dict, refilled by every refresh
        self.shapes_combo = LayerPicker(NONE, tooltip="Optional. A box annotates the image (plane) it lies on: only "
                                        "the inside of boxes is read there. Images without a box are read whole.")
        self.settings = ParamsForm([(PerceptronParams, "lam"), (PerceptronParams, "bfgs"),
                                    (PerceptronParams, "device")])
        self.apply_to = ComboBox(name="apply_to", label="Apply to", choices=APPLY_MODES)
        buttons = {"add_labels": ("Add labels to the selected image", self._add_labels), "fit": ("Fit", self._fit),
                   "apply": ("Apply", self._apply), "save": ("Save perceptron…", self._save),
                   "load": ("Load perceptron…", self._load)}
        # engine sentences may start with an image's name ("image 'a' is colour…"): shown capitalised
        self.jobs = job_controls(self, buttons, "Check support images, choose their labels layers, then press Fit.",
                                 fail=lambda message: self.jobs.show_failure(capitalised(message)))
        self.cancel_note, self.big_folder = CancelNote(self.jobs), OutputFolder()

        self.form = form = form_rows(
            ("Boxes", self.shapes_combo.native), self.add_labels_button, self.settings.native, self.fit_button,
            ("Apply to", self.apply_to.native), self.apply_button,
            ("Big images: output folder", self.big_folder.widget),
            hbox(self.save_button, self.load_button),
        )
        vbox(self, self.images, form, self.cancel_button, self.progress, self.status)
        watch_layers(self.viewer, self._refresh)

    # ----------------------------------------------------------------- layer choices
    def _refresh(self):
        shapes = [lay for lay in self.viewer.layers if isinstance(lay, Shapes)]
        # the plugin's own box layers (prompt / partial-label boxes) are picked by default: labels painted
        # only inside them must not be read as background elsewhere
        own = [lay for lay in shapes if lay.name.startswith("fewcell") and "box" in lay.name]
        self.shapes_combo.refill(shapes, own)
        # the output folder matters only for big or lazy images: shown while one is open
        self.big_folder.show_for_any(self.form, self.viewer.layers)

    def _target(self) -> Image:
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        if isinstance(active, Labels):  # a labels layer of an image: that image
            for row in self.rows.values():
                if row.labels.layer is active:
                    return row.layer
        images = [lay for lay in self.viewer.layers if isinstance(lay, Image)]
        if not images:
            raise FewcellError("Open an image first.")
        return images[0]

    def _labels_of(self, image) -> Labels:
        """The labels to paint for ``image``: "<image> labels" when it is an annotation Labels layer of the image's
        shape, else a new empty one (under a free name, "<image> labels [2]", when that name is taken)."""
        shape, name = image_shape(image), f"{image.name} labels"
        layer = named_layer(self.viewer, name, Labels)
        if layer is not None and layer_data(layer).shape == shape and not layer.metadata.get(RESULT_KEY):
            return layer
        free, k = name, 2
        while free in self.viewer.layers:
            free, k = f"{name} [{k}]", k + 1
        return self.viewer.add_labels(np.zeros(shape, np.uint8), name=free, scale=image.scale,
                                      translate=image.translate)

    def _add_labels(self):
        try:
            image = self._target()
        except FewcellError as err:
            return self.jobs.fail(str(err))
        layer = self._labels_of(image)
        row = self.rows.get(image.name)
        if row is not None and any(layer is o for o in row.labels.layers):
            row.labels.value = layer
        self.viewer.layers.selection.active = layer
        layer.mode, layer.selected_label = "paint", 1
        self.status.setText(f"Paint structures (1, 2, … for several classes) and background (0) in '{layer.name}'. "
                            "Everything is read unless you draw boxes; then press Fit.")

    # ----------------------------------------------------------------- fit
    def _extractors(self, device: str) -> Extractors:
        if device not in self._fx:
            self._fx[device] = Extractors(device=device)
        return self._fx[device]

    def _collect_fit(self) -> dict:
        shapes, point = self.shapes_combo.layer, self.viewer.dims.point
        checked = self.images.checked()
        if not checked:
            raise FewcellError("No support image is checked; check an image and choose its labels layer.")
        data, missed = [], []
        for row in checked:
            if row.labels.layer is None:
                raise FewcellError(f"The support image '{row.layer.name}' has no labels layer; choose one in its row "
                                   "or uncheck it.")
            planes, miss = _support_planes(row.layer, row.labels.layer, shapes, point)
            data, missed = data + planes, missed + [miss]
        if missed and all(missed):  # boxes drawn, none on any support image: nothing the user marked would be read
            raise missed[0]
        if not data:
            raise FewcellError("The checked images' labels are empty; paint some structures and background first.")
        request = FitRequest(data, PerceptronParams(**self.settings.values(PerceptronParams)))
        request.check()  # said at once, before the extractors load
        fx = self._extractors(request.params.device)
        return {"make": lambda: fit_job(request, fx), "done": self._fit_done}

    def _fit_done(self, model: Perceptron):
        self.model, meta = model, model.meta
        kept = ", ".join(f"class {r['class']}: {r['kept']}" + (f" ({r['note']})" if r.get("note") else "")
                         for r in meta["fit"])
        annotated = sum(sp["annotated_pixels"] for sp in meta["support"])
        self.status.setText(
            f"Fitted on {len(meta['support'])} support plane(s) ({annotated} annotated pixels, "
            f"{meta['pixels_used']} used), classes "
            f"{[int(c) for c in model.fg]} ({kept}); features {meta['features_seconds']:.1f} s, fit "
            f"{meta['fit_seconds']:.1f} s. Press Apply."
        )

    def _fit(self):
        self.jobs.start(self.cancel_note(self._collect_fit), "Computing features…")

    # ----------------------------------------------------------------- apply
    def _collect_apply(self) -> dict:
        if self.model is None:
            raise FewcellError("There is no perceptron yet; press Fit (or load a saved one) first.")
        mode = self.apply_to.value
        if mode == "all":
            images = [lay for lay in self.viewer.layers if isinstance(lay, Image)]
        else:
            images = [self._target()]
        items, folder = [], self.big_folder.folder()
        for image in images:
            if mode == "plane" and image.ndim == 3:
                plane, idx = plane_at(image, self.viewer.dims.point)
                items.append({"name": image.name, "planes": [plane], "layer": image, "index": idx[0], "stack": True})
            elif (target := lazy_target(image, folder)) is not None:
                items.append({"name": image.name, "planes": [], "layer": image, "index": None, "target": target})
            else:
                items.append({"name": image.name, "planes": image_planes(image), "layer": image, "index": None,
                              "stack": image.ndim == 3})
        model = self.model
        return {"items": items, "make": lambda: _predict_all(model, items), "done": self._apply_done,
                "lazy": [it["target"] for it in items if it.get("target")]}

    def _apply_done(self, results):
        added, written = [], []
        for item, planes in zip(self.jobs.job["items"], results):
            image = item["layer"]
            if item.get("target") is not None:  # the zarr array of a big or lazy image
                added.append(item["target"].add_labels(self.viewer, planes, f"{item['name']} {RESULT_SUFFIX}").name)
                written.append(written_text(item["target"]))
                continue
            if item["index"] is not None:  # one plane of a stack: a stack-shaped layer with only that plane
                labels = np.zeros(image_shape(image), planes[0].dtype)
                labels[item["index"]] = planes[0]
            else:
                labels = np.stack(planes) if image.ndim == 3 else planes[0]
            layer = self.viewer.add_labels(labels, name=f"{item['name']} {RESULT_SUFFIX}", scale=image.scale,
                                           translate=image.translate, metadata={RESULT_KEY: True})
            added.append(layer.name)
        where = f" ({'; '.join(written)})" if written else ""
        self.status.setText(f"Added {', '.join(repr(n) for n in added)}{where}.")

    def _apply(self):
        self.jobs.start(self.cancel_note(self._collect_apply), "Predicting…")

    # ----------------------------------------------------------------- files
    def save_to(self, path) -> Path | None:
        if self.model is None:
            self.jobs.fail("There is no perceptron to save; press Fit first.")
            return None
        path = Path(path)
        path = path if path.suffix.lower() == ".npz" else Path(f"{path}.npz")
        try:
            self.model.save(path)
        except FewcellError as err:
            self.jobs.fail(str(err))
            return None
        self.status.setText(f"Saved the perceptron to {path} ({path.stat().st_size / 1024:.0f} KB).")
        return path

    def load_from(self, path) -> Perceptron | None:
        try:
            model = Perceptron.load(path, device=self.settings.device.value)
        except FewcellError as err:
            self.jobs.fail(str(err))
            return None
        self.model = model
        self.status.setText(f"Loaded {Path(path).name} (classes {[int(c) for c in model.fg]}, fitted on "
                            f"{len(model.meta.get('support', []))} support plane(s)); press Apply.")
        return model

    def _save(self):
        if self.model is None:
            return self.jobs.fail("There is no perceptron to save; press Fit first.")
        path, _ = QFileDialog.getSaveFileName(self, "Save perceptron", "fewcell_perceptron.npz",
                                              "napari-fewcell perceptron (*.npz)")
        if path:
            self.save_to(path)

    def _load(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load perceptron", "",
                                              "napari-fewcell perceptron (*.npz);;All files (*)")
        if path:
            self.load_from(path)
