"""Dock widget for prompt (one-shot) segmentation: pick layers, draw a box, paint, segment.

Qt and napari glue only; all image work is done by :mod:`napari_fewcell.engine`.
"""
from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox
from napari.layers import Image, Labels, Shapes
from qtpy.QtWidgets import QPushButton, QWidget

from ..engine import FewcellError, PromptParams, Segmenter, estimate_text
from ..engine.prompt import apply_corrections
from .forms import LABEL_OUTPUTS, ParamsForm, form_rows, hlayout, vbox
from .geometry import (
    box_corners,
    box_in_view,
    boxes_by_plane,
    from_world,
    plane_at,
    planes_prompt,
    require_rectangles,
    shape2d,
    to_world,
    whole_stack,
)
from .jobs import capitalised, job_controls
from .layers import (
    BOX_COLOR,
    BOX_SIZE,
    RESULT_KEY,
    LayerPicker,
    annotation_labels,
    box_edge,
    named_layer,
    result_colormap,
    watch_layers,
)
from .lazy import (
    CancelNote,
    OutputFolder,
    lazy_target,
    prompt_labels,
    written_text,
)
from .live import LiveMode, ResultRecord, corrections_text
from .prompt_job import PromptJob, progress_text, segment_gen

BOX_LAYER = "fewcell prompt boxes"
PROVENANCE = "fewcell"  #: the result layer's metadata key for how it was made (Segmenter.provenance)
SAME = "(same as target)"
NONE = "(none)"
ADD_BOX = "press 'Add prompt box', paint inside it, then Segment."
NO_BOX = f"No prompt box yet: {ADD_BOX}"


def boxes_key(boxes, planes, more) -> tuple:
    """The prompt boxes (those of other planes too, and the plane of each) as a result remembers them: a correction
    stays local only while they are the same."""
    def key(bxs):
        return tuple(sorted(tuple(int(v) for v in b) for b in bxs))
    return key(boxes), repr(planes), tuple(key(bxs) for _, _, bxs in more)


class PromptSegmentationWidget(QWidget):
    """Segment an image from a small painted box of a prompt image."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._segmenters: dict[tuple, Segmenter] = {}

        self.image_combo = LayerPicker()
        self.prompt_image_combo = LayerPicker(SAME)
        self.labels_combo = LayerPicker(NONE)
        self.shapes_combo = LayerPicker(NONE)
        self.add_box_button = QPushButton("Add prompt box")
        self._make_settings()
        self.output = ComboBox(name="output", label="Output", choices=LABEL_OUTPUTS, tooltip=(
            "Classes: one value per class. Instances: one label per object (components: connected regions; "
            "watershed: touching round objects split too)."))
        self.whole_stack = CheckBox(name="whole_stack", text="Segment the whole stack", tooltip=(
            "On a Z×Y×X or T×Y×X image: every plane with the same prompt, one Labels stack (off: the plane shown)."))
        self.live_check = CheckBox(name="live", text="Live", tooltip=(
            "Re-segment 0.3 s after every stroke, box move or correction: what is on screen first, then the rest, "
            "into one result layer updated in place (2D images)."))
        self.outputs = Container(widgets=[self.output, self.whole_stack, self.live_check], labels=True)
        self.outputs.native.layout().setContentsMargins(0, 0, 0, 0)
        self.big_folder = OutputFolder()
        self.jobs = job_controls(self, {"segment": ("Segment", self._segment)})
        self.jobs.progress_text = progress_text
        self.cancel_note = CancelNote(self.jobs)

        form = form_rows(
            ("Image to segment", self.image_combo.native), ("Prompt image", self.prompt_image_combo.native),
            ("Prompt labels", self.labels_combo.native), ("Prompt boxes", self.shapes_combo.native),
            self.add_box_button, self.settings.native, self.outputs.native,
            ("Big images: output folder", self.big_folder.widget),
        )
        vbox(self, form, hlayout(self.segment_button, self.cancel_button), self.progress, self.status)
        self.image_combo.changed.connect(lambda layer: self.big_folder.show_for(form, layer))
        self.big_folder.show_for(form, None)

        self.record: ResultRecord | None = None  #: the latest result layer (its edits are corrections)
        self.live = LiveMode(self, self.live_check)
        self.add_box_button.clicked.connect(self._add_box)
        watch_layers(self.viewer, self._refresh)

    def _make_settings(self) -> None:
        """The adaptation, attention and device fields (a form of PromptParams' fields), the temperature and the
        weights file."""
        tau = FloatSpinBox(name="tau", label="τ (temperature)", min=0.0, max=10.0, step=0.01, tooltip=(
            "Attention temperature τ; 'default' uses the value the weights were trained with."))
        tau.native.setDecimals(3)
        tau.native.setSpecialValueText("default")  # shown at the minimum: τ of the weights
        weights = FileEdit(name="weights", label="Weights", mode="r", filter="Weights (*.pt)", nullable=True,
                           tooltip="Embedding weights (.pt) trained by `fewcell pretrain`; empty: the shipped ones.")
        weights.line_edit.native.setPlaceholderText("shipped weights")
        self.settings = ParamsForm([(PromptParams, "adapt"), (PromptParams, "attention"), (PromptParams, "device"),
                                    tau, weights])

    # ----------------------------------------------------------------- layer choices
    def _refresh(self):
        layers = list(self.viewer.layers)
        images = [lay for lay in layers if isinstance(lay, Image)]
        labels = annotation_labels(layers)
        shapes = [lay for lay in layers if isinstance(lay, Shapes)]
        self.image_combo.refill(images, images[:1])
        self.prompt_image_combo.refill(images, [])
        # only the plugin's own layers are chosen unasked: a user's other Labels (ground truth) or Shapes layer would
        # be painted in, or its shapes read as the prompt; the user may still pick it
        self.labels_combo.refill(labels, [lay for lay in labels if lay.name.endswith("prompt labels")])
        self.shapes_combo.refill(shapes, [lay for lay in shapes if lay.name.startswith(BOX_LAYER)])

    def _layer(self, picker: LayerPicker, what: str):
        """The layer a picker shows, still in the viewer; one sentence if none is chosen."""
        layer = picker.layer
        if layer is None or layer not in self.viewer.layers:
            raise FewcellError(f"Choose the {what} layer first.")
        return layer

    def _target_and_prompt_images(self):
        target = self._layer(self.image_combo, "image to segment")
        other = self.prompt_image_combo.layer
        return target, (target if other is None else self._layer(self.prompt_image_combo, "prompt image"))

    # ----------------------------------------------------------------- prompt box
    def _add_box(self):
        try:
            _, image = self._target_and_prompt_images()
        except FewcellError as err:
            return self._fail(str(err))
        point, (y0, x0, h, w) = self.viewer.dims.point, box_in_view(self.viewer, image, BOX_SIZE)
        labels, shapes = self._box_layers(image)
        rect = box_corners(shapes, image, (y0, x0, h, w), point)
        shapes.add_rectangles(rect, edge_color=BOX_COLOR, face_color="transparent", edge_width=box_edge(image))
        shapes.selected_data = {len(shapes.data) - 1}
        self.labels_combo.value, self.shapes_combo.value = labels, shapes
        self.viewer.layers.selection.active = labels
        labels.mode = "paint"
        labels.selected_label = 1
        self.status.setText(
            f"Box at Y={y0} X={x0} ({h}×{w}). Paint structures with label 1 (more classes with 2, 3, …) "
            f"inside the {BOX_COLOR} box, keep some background, then press Segment."
        )

    def _box_layers(self, image):
        """The prompt labels and box layers a new box of ``image`` goes into: the chosen ones, unless the labels are
        of another image's size (a second image: its own "<image> prompt labels" and box layer, found or made, so
        that the first image's box and paint stay out of its prompt)."""
        place = {"scale": image.scale[-2:], "translate": image.translate[-2:]}
        labels, shapes, name = self.labels_combo.layer, self.shapes_combo.layer, f"{image.name} prompt labels"
        another = labels is not None and labels.name.endswith("prompt labels") and labels.name != name
        if labels is not None and shape2d(labels) == shape2d(image) and not another:
            return labels, shapes or self.viewer.add_shapes(ndim=2, name=BOX_LAYER, **place)
        own = named_layer(self.viewer, name, Labels)
        if own is None or shape2d(own) != shape2d(image):
            own = self.viewer.add_labels(np.zeros(shape2d(image), np.uint8), name=name, **place)
        if labels is not None or shapes is None:  # another image's labels were chosen: its boxes are not this one's
            box_name = BOX_LAYER if labels is None else f"{BOX_LAYER} ({image.name})"
            shapes = named_layer(self.viewer, box_name, Shapes) or self.viewer.add_shapes(ndim=2, name=box_name,
                                                                                          **place)
        return own, shapes

    def _box(self, shapes, image, point) -> tuple[int, int, int, int]:
        """(y, x, h, w) in the prompt image's data of the selected (else last) shape."""
        selected = sorted(shapes.selected_data)
        return self._boxes(shapes, image, point)[selected[-1] if selected else -1]

    def _boxes(self, shapes, image, point) -> list[tuple[int, int, int, int]]:
        """Every rectangle of the prompt-box layer, in drawing order: all of them are the prompt."""
        if len(shapes.data) == 0:
            raise FewcellError(f"The layer '{shapes.name}' holds no box: {ADD_BOX}")
        require_rectangles(shapes)
        return [self._shape_box(shapes, i, image, point) for i in range(len(shapes.data))]

    @staticmethod
    def _shape_box(shapes, i: int, image, point) -> tuple[int, int, int, int]:
        verts = np.asarray(shapes.data[i], float)
        pts = np.array([from_world(image, to_world(shapes, v[-2:], point), point)[-2:] for v in verts])
        (y0, x0), (y1, x1) = np.round(pts.min(0)), np.round(pts.max(0))
        return int(y0), int(x0), int(y1 - y0), int(x1 - x0)

    # ----------------------------------------------------------------- segmentation
    def params(self) -> PromptParams:
        """The parameters the form shows (τ at 'default': the weights' own; no weights file: the shipped ones)."""
        values, form = self.settings.values(PromptParams), self.settings
        values["tau"] = None if form.tau.value <= form.tau.min else float(form.tau.value)
        values["weights"] = str(form.weights.value) if form.weights.value else None
        return PromptParams(**values)

    def _params_key(self) -> tuple:
        p = self.params()
        return p.weights, p.device, p.tau, p.attention, p.adapt

    def _get_segmenter(self, key: tuple) -> Segmenter:
        if key not in self._segmenters:
            weights, device, tau, attention, adapt = key
            seg = Segmenter(PromptParams(tau=tau, attention=attention, weights=weights, device=device, adapt=adapt))
            if len(self._segmenters) >= 4:
                self._segmenters.clear()
            self._segmenters[key] = seg
        return self._segmenters[key]

    def _collect(self, corrections: bool = True) -> PromptJob:
        """Everything the worker needs, read from the layers on the GUI thread (``corrections``: with the edits of
        the latest Segment result; live update keeps its own)."""
        target, prompt_image = self._target_and_prompt_images()
        if self.labels_combo.layer is None and self.shapes_combo.layer is None:
            raise FewcellError(NO_BOX)
        labels = self._layer(self.labels_combo, "prompt labels")
        shapes = self._layer(self.shapes_combo, "prompt boxes")
        point, folder = self.viewer.dims.point, self.big_folder.folder()
        boxes = self._boxes(shapes, prompt_image, point)
        box = boxes[-1]
        lazy = lazy_target(target, folder) if target.ndim == 2 else None  # a stack: its current plane, as ever
        plane, idx = (lazy, ()) if lazy is not None else plane_at(target, point)
        stack = bool(self.whole_stack.value and idx)
        if stack:
            plane, idx = whole_stack(target), ()
        if lazy is not None and self.output.value:
            raise FewcellError("Instances need the whole image, and this one is segmented block by block; choose "
                               "'classes' as the output.")
        source = lazy_target(prompt_image) if prompt_image.ndim == 2 else None
        if source is not None and len(boxes) > 1:
            raise FewcellError("A prompt of several boxes needs the prompt image in memory; paint them on a crop of "
                               "this big image, or keep one box.")
        prompt = source if source is not None else plane_at(prompt_image, point)[0]
        prompt_lab, more, planes = prompt_labels(labels, prompt_image, box, point), [], None
        groups = boxes_by_plane(shapes, prompt_image, point) if source is None else None
        if groups:  # boxes on planes of a stack: the plane shown (else the first) and the others
            prompt, prompt_lab, boxes, more, planes = planes_prompt(groups, prompt_image, labels, point)
        corrections, plane_note = self._corrections(target, prompt_image, boxes, idx) if corrections else (None, "")
        corrected = self.record.corrected(boxes_key(boxes, planes, more), idx, stack, plane) \
            if corrections and lazy is None and not self.output.value else None
        return PromptJob(target, plane, prompt, prompt_lab, boxes, self._params_key(), prompt_image is target, idx,
                         stack, self.output.value, more, planes, corrections, plane_note,
                         [lazy] if lazy else [], corrected)

    def _corrections(self, target, prompt_image, boxes, idx) -> tuple[list | None, str]:
        """The edits of the latest result layer of this image (if still there) as (plane, corrections) pairs, and
        what the status says of their planes."""
        rec = self.record
        if rec is None or rec.target != target.name:
            return None, ""
        if rec.foreground is None and rec.layer in self.viewer.layers and rec.layer.metadata.get("fewcell", {}).get(
                "instances"):
            raise FewcellError("Corrections on an instance result need a prompt of one class and background; correct "
                               "a class result instead.")
        if rec.harvest(self.viewer, boxes if prompt_image is target and not rec.stack else ()) is None:
            self.record = None
            return None, ""
        pairs = rec.pairs()
        planes = [(z,) for z in range(len(rec.corrections)) if (rec.corrections[z] >= 0).any()] if rec.stack else \
            ([rec.plane] if rec.plane and pairs else [])
        other = [str(z[0]) for z in planes if z != tuple(idx)]
        note = f", painted on plane {', '.join(other)}: read from that plane" if other and idx else ""
        return pairs or None, note

    def check_live(self) -> None:
        """One sentence if live update cannot run on the chosen image."""
        target, _ = self._target_and_prompt_images()
        if target.ndim != 2 or getattr(target, "multiscale", False) or lazy_target(target, None) is not None:
            raise FewcellError(f"Live update works on a 2D image in memory; '{target.name}' is "
                               f"{'a stack' if target.ndim > 2 else 'a big (lazy) image'}: untick Live and press "
                               "Segment (it does stacks and big images).")

    def live_sources(self) -> list[tuple[object, str]]:
        """The layers whose edits start a live update: strokes on the prompt labels, boxes drawn or moved."""
        out = []
        for picker, event in ((self.labels_combo, "paint"), (self.shapes_combo, "data")):
            if picker.layer is not None and picker.layer in self.viewer.layers:
                out.append((picker.layer, event))
        return out

    def collect_live(self) -> tuple[PromptJob, Segmenter, tuple, np.ndarray]:
        """What a live update needs, read on the GUI thread: the job, its segmenter, the key of its live session
        (the image and the settings) and the view's corners."""
        self.check_live()
        job = self._collect(corrections=False)
        return job, self._get_segmenter(job.key), (id(job.target_layer), job.key), np.asarray(
            job.target_layer.corner_pixels)

    def _collect_job(self) -> dict:
        job = self._collect()
        return {"spec": job, "lazy": job.lazy, "done": self._segmented,
                "make": lambda: segment_gen(self._get_segmenter(job.key), job)}

    def _segment(self):
        self.jobs.start(self.cancel_note(self._collect_job), "Loading the model…")

    def _segmented(self, result):
        labels, prompt, provenance = result
        job: PromptJob = self.jobs.job["spec"]
        rec = self.record if job.corrections else None
        if rec is not None and not job.instances and not job.lazy and rec.stack == job.stack and \
                rec.plane == job.idx and rec.corrections.shape == labels.shape:
            labels = apply_corrections(labels, rec.corrections)  # what the user painted stays
        if job.lazy:
            layer = job.lazy[0].add_labels(self.viewer, labels, f"{job.name} fewcell", {PROVENANCE: provenance})
            text = f"Added '{layer.name}' ({written_text(job.lazy[0])})."
        else:
            layer = self.viewer.add_labels(
                labels, name=f"{job.name} fewcell", scale=job.target_layer.scale[-labels.ndim:],
                translate=job.target_layer.translate[-labels.ndim:],
                metadata={RESULT_KEY: True, PROVENANCE: provenance},
            )
            classes = [int(c) for c in prompt.classes if c]
            self.record = ResultRecord(layer, np.array(labels, copy=True), job.name, job.idx, job.stack,
                                       classes[0] if job.instances and len(classes) == 1 else None,
                                       job.target, rec.corrections if rec is not None else None,
                                       boxes_key(job.boxes, job.box_planes, job.more))
            values = [int(c) for c in np.unique(labels) if c]
            if not job.instances and values == [1]:  # one class: a colour that stands out on the image
                layer.colormap = result_colormap(job.target)
            text = f"Added '{layer.name}' with " + (f"{len(values)} objects." if job.instances else
                                                     f"label values {values or 'none (all background)'}.")
        if job.idx:
            text += f" Only the plane at index {job.idx} was done: segmented the current plane."
        if job.stack:
            text += f" All {labels.shape[0]} planes were segmented with the one prompt."
        pixels = ", ".join(f"class {c}: {n}" for c, n in provenance["prompt_pixels"].items())
        text += f" Prompt: {len(provenance['boxes'])} box{'es' if len(provenance['boxes']) > 1 else ''} ({pixels} " \
                "pixels)."
        notes = corrections_text(prompt.notes, job.plane_note)
        text += f" {capitalised(notes)}." if notes else ""
        colour = provenance.get("colour")
        text += f" {capitalised(colour)}." if colour else ""
        estimate = estimate_text(prompt.path, prompt.check, len(prompt.boxes), prompt.box_labels, prompt.unchecked)
        self.status.setText(f"{text} {estimate}." if estimate else text)

    def _fail(self, message: str):
        self.jobs.fail(message)
