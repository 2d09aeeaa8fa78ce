"""Dock widget for partial labels: boxes painted in a few images → pseudo-labels → a trained network.

Qt and napari glue only; all image work is done by :mod:`napari_fewcell.engine`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox
from napari.layers import Labels, Shapes
from qtpy.QtWidgets import QFileDialog, QWidget

from ..engine.core.annotation import annotate
from ..engine.core.errors import FewcellError
from ..engine.core.files import export_labels
from ..engine.core.progress import Progress
from ..engine.partial import (
    PartialResult,
    PseudoParams,
    PseudoRequest,
    SegModel,
    TrainParams,
    TrainRequest,
    describe_epoch,
    describe_labeller,
    pseudo_job,
    train_job,
)
from .forms import LABEL_OUTPUTS, ParamsForm, form_rows, hbox, vbox
from .geometry import (
    as_planes,
    box_corners,
    box_in_view,
    image_planes,
    image_shape,
    layer_data,
    plane_at,
    rect_of,
    require_rectangles,
)
from .jobs import default_progress_text, job_controls
from .layers import (
    BOX_COLOR,
    BOX_SIZE,
    RESULT_KEY,
    ImageRow,
    ImageRows,
    LayerPicker,
    box_edge,
    watch_layers,
)
from .lazy import CancelNote, OutputFolder, lazy_target, predict_lazy, written_text

BOX_LAYER = "fewcell boxes"
UNANNOTATED = "(unannotated)"
NONE = "(none)"
PSEUDO_OF = "fewcell_pseudo_of"  # metadata: name of the image a pseudo-label layer belongs to
ORIGINAL = "fewcell_original"  # metadata: the generated array (the user's edits of it = fixes)
FIXES = "fewcell_fixes"  # metadata: pixels that were already fixes when the layer was generated
KNOWN = "fewcell_known"  # metadata: the annotated pixels (boxes, fixes) the layer was generated from


def kept_pixels(data, meta: dict, shape) -> np.ndarray:
    """The pixels of a pseudo-label layer that self-training keeps: those annotated when it was generated (its boxes
    and the fixes it was generated from) and those the user has painted since (where it differs from what was
    generated)."""
    keep = np.zeros(shape, bool)
    if np.shape(meta.get(KNOWN)) == shape:
        keep |= np.asarray(meta[KNOWN], bool)
    if np.shape(meta.get(ORIGINAL)) == shape:
        keep |= np.asarray(data) != meta[ORIGINAL]
    return keep


def _predict_planes(model: SegModel, planes: list):
    out = []
    for plane in planes:
        out.append((yield from model.predict_iter(plane)))
    return out


def _default_labels(image, options: list[str], owners: dict) -> str | None:
    """The labels named after the image ("<image> labels" / "<image> prompt labels"), else the only candidate
    not named after another image, else None (unannotated)."""
    own = [n for n in options if owners.get(n) == image.name]
    free = [n for n in options if n not in owners]
    return own[0] if own else (free[0] if len(free) == 1 == len(options) else None)


class PartialLabelsWidget(QWidget):
    """Pseudo-labels for whole images from labels painted inside a few boxes; then a segmentation network."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.classes = self.history = self.finetuned = None  # of the last pseudo-labelling
        self.model: SegModel | None = None  # the stage-2 network (trained or loaded)

        self.images = ImageRows(self.viewer, "Images (checked = used) and their annotation labels", UNANNOTATED,
                                _default_labels)
        self.rows: dict[str, ImageRow] = self.images.rows  # the same dict, refilled by every refresh
        self.shapes_combo = LayerPicker(NONE)
        self.stage1 = ParamsForm([(PseudoParams, "epochs"), (PseudoParams, "steps_per_epoch"),
                                  (PseudoParams, "device")])
        self.stage2 = ParamsForm([(TrainParams, "steps"), (TrainParams, "init"), (TrainParams, "rounds")])
        self.oneshot = CheckBox(name="oneshot", text="Annotated images are fully labelled (one-shot fine-tuning)",
                                tooltip="Paper 000, Table 1: every pixel of an image with labels is known; its boxes "
                                "are the prompts. Unannotated images get pseudo-labels.")
        self.export_as = ComboBox(name="export_as", label="Export as", choices=LABEL_OUTPUTS,
                                  tooltip="Classes: one value per class. Instances: one label per object.")
        buttons = {"add_box": (f"Add {BOX_SIZE}×{BOX_SIZE} box", self._add_box),
                   "generate": ("Generate pseudo-labels", self._generate), "export": ("Export to TIFF…", self._export),
                   "train": ("Train segmentation network", self._train), "apply": ("Apply network", self._apply),
                   "save": ("Save network…", self._save), "load": ("Load network…", self._load)}
        self.jobs = job_controls(self, buttons, cancelled_text="Cancelled.")
        self.jobs.progress_text = self._progress_text
        self.cancel_note, self.big_folder = CancelNote(self.jobs), OutputFolder()

        self.form = form = form_rows(
            ("Boxes", self.shapes_combo.native), self.add_box_button, self.stage1.native, self.oneshot.native,
            hbox(self.generate_button, self.export_button), ("Export as", self.export_as.native),
            self.stage2.native, hbox(self.train_button, self.apply_button),
            ("Big images: output folder", self.big_folder.widget), hbox(self.save_button, self.load_button),
        )
        vbox(self, self.images, form, self.cancel_button, self.progress, self.status)
        watch_layers(self.viewer, self._refresh)

    # ----------------------------------------------------------------- layer choices
    def _refresh(self):
        shapes = [lay for lay in self.viewer.layers if isinstance(lay, Shapes)]
        # only the plugin's own box layer is chosen unasked: a user's Shapes layer would get our boxes (or pick it)
        self.shapes_combo.refill(shapes, [lay for lay in shapes if lay.name.startswith(BOX_LAYER)])
        # the output folder matters only for big or lazy images: shown while one is open
        self.big_folder.show_for_any(self.form, self.viewer.layers)

    def _checked(self) -> list[ImageRow]:
        rows = self.images.checked()
        if not rows:
            raise FewcellError("No image is checked; check at least one image in the Images list.")
        return rows

    def _target(self) -> ImageRow:
        """The selected image if it is listed, else the first checked (else first) one."""
        rows = list(self.rows.values())
        active = [r for r in rows if r.layer is self.viewer.layers.selection.active]
        pick = active or [r for r in rows if r.check.value] or rows
        if not pick:
            raise FewcellError("Open an image first.")
        return pick[0]

    def _pseudo_layer(self, image_name: str):
        """The newest pseudo-label layer of an image (the last one in the layer list), or None."""
        found = [lay for lay in self.viewer.layers
                 if isinstance(lay, Labels) and lay.metadata.get(PSEUDO_OF) == image_name]
        return found[-1] if found else None

    # ----------------------------------------------------------------- boxes
    def _add_box(self):
        try:
            row = self._target()
        except FewcellError as err:
            return self._fail(str(err))
        image, point = row.layer, self.viewer.dims.point
        y0, x0, h, w = box_in_view(self.viewer, image, BOX_SIZE)
        place = {"scale": image.scale, "translate": image.translate}
        shapes = self.shapes_combo.layer
        if shapes is None:  # 3D for a stack: its rectangles carry their plane
            shapes = self.viewer.add_shapes(ndim=image.ndim, name=BOX_LAYER, **place)
        rect = box_corners(shapes, image, (y0, x0, h, w), point)
        rect[:, :-2] = np.round(rect[:, :-2])
        shapes.add_rectangles(rect, edge_color=BOX_COLOR, face_color="transparent", edge_width=box_edge(image))
        self.shapes_combo.value = shapes
        labels = row.labels.layer
        if labels is None:
            labels = self.viewer.add_labels(np.zeros(image_shape(image), np.uint8), name=f"{image.name} labels",
                                            **place)
            self.rows[image.name].labels.value = labels
        self.viewer.layers.selection.active = labels
        labels.mode, labels.selected_label = "paint", 1
        where = f" on plane {plane_at(image, point)[1][0]}" if image.ndim == 3 and shapes.ndim == 3 else ""
        self.status.setText(
            f"Box at Y={y0} X={x0} ({h}×{w}){where} of '{image.name}'. Paint structures (1, 2, …) and some "
            f"background inside it in '{labels.name}', then press Generate pseudo-labels."
        )

    # ----------------------------------------------------------------- jobs: collected on the GUI thread
    def _collect_pseudo(self) -> dict:
        """AnnotatedImages (per checked image, per plane) with boxes and the user's fixes."""
        shapes, point = self.shapes_combo.layer, self.viewer.dims.point
        data, items, carried, rows = [], [], [], self._checked()
        for row in rows:
            image, labels = row.layer, row.labels.layer
            stack, shape, planes = image.ndim == 3, image_shape(image), image_planes(image)
            if labels is not None and layer_data(labels).shape != shape:
                raise FewcellError(
                    f"The labels '{labels.name}' are {'×'.join(map(str, layer_data(labels).shape))} but the image "
                    f"'{image.name}' is {'×'.join(map(str, shape))}; choose labels of the image's shape."
                )
            if shapes is not None:
                require_rectangles(shapes)
            rects = [rect_of(shapes, v, image, point) for v in shapes.data] if shapes is not None else []
            lab_planes = None if labels is None else as_planes(layer_data(labels), stack)
            fixed = values = None
            pseudo = self._pseudo_layer(image.name)
            if pseudo is not None and pseudo.data.shape == shape and np.shape(pseudo.metadata.get(ORIGINAL)) == shape:
                values = as_planes(np.array(pseudo.data), stack)
                fixed = as_planes(pseudo.data != pseudo.metadata[ORIGINAL], stack)
                if np.shape(pseudo.metadata.get(FIXES)) == shape:
                    fixed = fixed | as_planes(pseudo.metadata[FIXES], stack)
            for z, plane in enumerate(planes):
                lab = None if lab_planes is None else np.array(lab_planes[z], np.int64)
                if lab is not None and stack and not lab.any():
                    lab = None  # in a stack, a plane whose labels are all 0 is unannotated
                boxes = [b for p, b in rects if p is None or p == z] if lab is not None else []
                fixes = fixed[z] if fixed is not None and fixed[z].any() else None
                carried.append(np.zeros(plane.shape[:2], bool) if fixes is None else fixes)
                if fixes is not None:
                    lab = np.zeros(plane.shape[:2], np.int64) if lab is None else lab
                    lab[fixes] = values[z][fixes]
                data.append(annotate(plane, lab, boxes, fixes=fixes, name=f"{image.name} plane {z}" if stack
                                     else image.name, full=self.oneshot.value and lab is not None))
            items.append({"name": image.name, "planes": len(planes), "stack": stack, "scale": image.scale,
                          "translate": image.translate})
        if not any(d.known.any() for d in data):
            if shapes is None or not len(shapes.data):
                raise FewcellError(
                    f"There is no annotated box: press 'Add {BOX_SIZE}×{BOX_SIZE} box' (or draw a rectangle in "
                    "the Boxes layer) and paint structures and background inside it."
                )
            if all(r.labels.layer is None for r in rows):
                raise FewcellError("No checked image has annotation labels; choose its labels layer in the list.")
        request = PseudoRequest(data, PseudoParams(**self.stage1.values(PseudoParams)))
        request.check()  # said at once, before the network loads
        return {"items": items, "fixes": carried, "known": [d.known for d in data], "epochs": {},
                "done": self._pseudo_done,
                "make": lambda: pseudo_job(request)}

    def _pseudo_done(self, done: PartialResult):
        job, added, i, result = self.jobs.job, [], 0, done.pseudo
        for item in job["items"]:
            n, stack = item["planes"], item["stack"]
            labels = np.stack(result.labels[i : i + n]) if stack else result.labels[i]
            fixes = np.stack(job["fixes"][i : i + n]) if stack else job["fixes"][i]
            known = np.stack(job["known"][i : i + n]) if stack else job["known"][i]
            i += n
            meta = {RESULT_KEY: True, PSEUDO_OF: item["name"], ORIGINAL: labels.copy(), KNOWN: known}
            if fixes.any():
                meta[FIXES] = fixes
            added.append(self.viewer.add_labels(labels, name=f"{item['name']} pseudo-labels", scale=item["scale"],
                                                translate=item["translate"], metadata=meta).name)
        self.classes, self.history, self.finetuned = result.classes, result.history, result.model
        losses = "; ".join(describe_epoch(h) for h in result.history[-3:])
        self.status.setText(
            f"Added {', '.join(repr(n) for n in added)} with classes {[int(c) for c in result.classes]}. "
            + (f"Losses: {losses}. " if losses else "")
            + (f"{describe_labeller(result.labeller)}. " if result.labeller and result.labeller["check"] else "")
            + "Paint over mistakes; the next Generate takes your fixes as annotation."
        )

    def _collect_train(self) -> dict:
        images, labels, keep, names = [], [], [], []
        for row in self._checked():
            pseudo, shape, stack = self._pseudo_layer(row.layer.name), image_shape(row.layer), row.layer.ndim == 3
            if pseudo is not None and pseudo.data.shape == shape:
                images += image_planes(row.layer)
                labels += list(as_planes(np.array(pseudo.data), stack))
                keep += list(as_planes(kept_pixels(pseudo.data, pseudo.metadata, shape), stack))
                names.append(row.layer.name)
        if not images:
            raise FewcellError("No checked image has pseudo-labels yet; press Generate pseudo-labels first.")
        params = TrainParams(**self.stage2.values(TrainParams), device=self.stage1.device.value)
        request = TrainRequest(images, labels, params, source={
            "trained_on": "pseudo-labels from the napari-fewcell Partial labels widget", "images": names}, keep=keep)
        return {"names": names, "done": self._train_done, "make": lambda: train_job(request)}

    def _train_done(self, model: SegModel):
        self.model, loss = model, model.card.get("final_loss")
        self.status.setText(
            f"Trained a network on {', '.join(self.jobs.job['names'])} (classes {[int(c) for c in model.classes]}"
            + (f", final loss {loss:.4f}" if loss is not None else "") + "). Apply it, or save it."
        )

    def _collect_apply(self) -> dict:
        if self.model is None:
            raise FewcellError("There is no network yet; train one or load a saved one first.")
        image, model = self._target().layer, self.model
        lazy = lazy_target(image, self.big_folder.folder())  # a big or lazy image: block by block into zarr
        planes = None if lazy else image_planes(image)
        return {"name": image.name, "stack": image.ndim == 3, "scale": image.scale, "translate": image.translate,
                "done": self._apply_done, "lazy": [lazy] if lazy else [],
                "make": lambda: predict_lazy(model, lazy) if lazy else _predict_planes(model, planes)}

    def _apply_done(self, planes):
        job = self.jobs.job
        if job["lazy"]:
            layer = job["lazy"][0].add_labels(self.viewer, planes, f"{job['name']} fewcell net")
            return self.status.setText(f"Added '{layer.name}' ({written_text(job['lazy'][0])}).")
        labels = np.stack(planes) if job["stack"] else planes[0]
        layer = self.viewer.add_labels(labels, name=f"{job['name']} fewcell net", scale=job["scale"],
                                       translate=job["translate"], metadata={RESULT_KEY: True})
        classes = [int(c) for c in np.unique(labels) if c]
        self.status.setText(f"Added '{layer.name}' with label values {classes or 'none (all background)'}.")

    # ----------------------------------------------------------------- running jobs
    def _generate(self):
        self._start(self._collect_pseudo, "Fine-tuning…")

    def _train(self):
        self._start(self._collect_train, "Training the network…")

    def _apply(self):
        self._start(self._collect_apply, "Predicting…")

    def _start(self, collect, text: str):
        self.jobs.start(self.cancel_note(collect), text)

    def _progress_text(self, p: Progress) -> str:
        epochs = self.jobs.job.get("epochs")
        if epochs is not None and p.message.startswith("epoch "):  # "epoch 2/10 · pseudo 0.123 · prompt 0.456"
            epochs[p.message.split()[1]] = p.message  # the running mean of that epoch's losses
            lines = "\n".join(list(epochs.values())[-4:])
            return f"Fine-tuning, step {p.done} of {p.total}:\n{lines}"
        return default_progress_text(p)

    def _fail(self, message: str):
        self.jobs.fail(message)

    # ----------------------------------------------------------------- files
    def _export(self):
        items = []
        for row in self.rows.values():
            pseudo = self._pseudo_layer(row.layer.name)
            if row.check.value and pseudo is not None:
                stem = re.sub(r'[\\/:*?"<>|]', "_", row.layer.name)
                items.append((stem, np.asarray(pseudo.data), row.layer.name))
        if not items:
            return self._fail("No checked image has pseudo-labels yet; press Generate pseudo-labels first.")
        folder = QFileDialog.getExistingDirectory(self, "Export pseudo-labels into folder")
        if not folder:
            return
        method = self.export_as.value
        try:
            written = export_labels(folder, items, overwrite=False, instances=method)
        except FewcellError as err:
            return self._fail(str(err))
        self.status.setText(f"Wrote {', '.join(p.name for p in written)} into {folder}.")

    def _save(self):
        if self.model is None:
            return self._fail("There is no network to save; train one first.")
        path, _ = QFileDialog.getSaveFileName(self, "Save segmentation network", "fewcell_net.pt",
                                              "napari-fewcell network (*.pt)")
        if not path:
            return
        path = Path(path) if Path(path).suffix.lower() == ".pt" else Path(f"{path}.pt")
        try:
            self.model.save(path)
        except FewcellError as err:
            return self._fail(str(err))
        self.status.setText(f"Saved the network to {path} (and its card to {path.with_suffix('.json').name}).")

    def _load(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load segmentation network", "",
                                              "napari-fewcell network (*.pt);;All files (*)")
        if not path:
            return
        try:
            self.model = SegModel.load(path, device=self.stage1.device.value)
        except FewcellError as err:
            return self._fail(str(err))
        self.status.setText(f"Loaded {Path(path).name} (classes {[int(c) for c in self.model.classes]}); "
                            "press Apply network.")
