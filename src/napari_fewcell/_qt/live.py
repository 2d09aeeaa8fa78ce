"""Corrections on a result layer and live update, for the prompt segmentation widget (Qt glue only).

* :class:`ResultRecord` remembers what the widget wrote into its latest result layer, so the pixels the user has
  changed since (a brush stroke, a fill, an erasure) are found by comparison and become correction keys of the
  next prompt (``Segmenter.prepare_prompt_boxes(..., corrections=...)``).
* :class:`LiveMode` re-segments, 300 ms after the last stroke on the prompt labels, box move or correction, what
  is on screen first and then the rest, into one result layer updated in place; a newer stroke stops a stale run.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtCore import QTimer

from ..engine import FewcellError, Progress
from ..engine.prompt import apply_corrections, corrections_from_edit, local_changes, merge_corrections
from ..engine.prompt.live import VIEW_DONE, VIEW_FINAL, LiveSession, Patch
from .layers import RESULT_KEY

DEBOUNCE_MS = 300  #: live update waits this long after the last stroke


@dataclasses.dataclass
class ResultRecord:
    """The widget's latest result layer and what it wrote there (``produced``); ``corrections`` gathered so far."""

    layer: object
    produced: np.ndarray
    target: str  #: name of the image layer segmented
    plane: tuple  #: the plane's leading indices (() for a 2D image or a whole stack)
    stack: bool  #: the result is a whole stack (Z×Y×X)
    foreground: int | None  #: instance results: the class of every object (corrections map to it)
    images: object  #: the image (2D) or stack the result is of (corrections are keys from it)
    corrections: np.ndarray | None = None
    boxes: tuple = ()  #: the prompt boxes (and their planes) that made it: strokes stay local only under the same

    def corrected(self, boxes: tuple, plane: tuple, stack: bool, target) -> list | None:
        """``SegmentRequest.corrected`` for a new result of ``target`` (a plane or a stack) from the prompt ``boxes``:
        this result and its corrections, if it is of the same plane or stack and the boxes did not change (a new
        box makes a new result everywhere); else None."""
        if self.corrections is None or self.foreground is not None or self.boxes != boxes or self.plane != plane \
                or self.stack != stack or tuple(np.shape(target)[: self.produced.ndim]) != self.produced.shape:
            return None
        return [(self.produced.copy(), self.corrections.copy())]

    def harvest(self, viewer, boxes=()) -> np.ndarray | None:
        """Merge the user's edits of the layer since it was written into ``corrections``; None if the layer is
        gone from the viewer."""
        if self.layer not in viewer.layers:
            return None
        edits = corrections_from_edit(self.produced, np.asarray(self.layer.data), boxes, self.foreground)
        self.corrections = merge_corrections(self.corrections, edits)
        self.produced = np.array(self.layer.data, copy=True)
        return self.corrections

    def pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image plane, corrections) of every plane holding a correction."""
        corr = self.corrections
        if corr is None or not (corr >= 0).any():
            return []
        if not self.stack:
            return [(self.images, corr)]
        return [(self.images[z], corr[z]) for z in range(len(corr)) if (corr[z] >= 0).any()]


def corrections_text(notes: dict, plane_note: str = "") -> str:
    """What the status says of the prompt's boxes and corrections."""
    parts = []
    if notes.get("overlap_pixels"):
        parts.append(f"{notes['overlap_pixels']} pixels lie in two boxes: they count once")
    if notes.get("strokes"):
        parts.append(f"{notes['stroke_pixels']} corrected pixels ({notes['strokes']} strokes{plane_note}) joined "
                     f"the prompt ({notes['stroke_keys']} of them as keys)")
    if notes.get("inside_box_pixels"):
        parts.append(f"{notes['inside_box_pixels']} corrected pixels inside a box were ignored (the box's labels "
                     "win)")
    return "; ".join(parts)


@thread_worker(start_thread=False)
def _live_run(make):
    """Drive a live generator; a FewcellError ends it with its sentence (returned)."""
    try:
        yield from make()
    except FewcellError as err:
        return str(err)
    return None


class LiveMode:
    """Live update of one result layer while the user paints (see the module docstring)."""

    def __init__(self, widget, check):
        self.widget, self.check = widget, check
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.update)
        self.session: LiveSession | None = None
        self.session_key = None
        self.worker = None
        self.pending = self.hold = False
        self.boxes: list = []
        #: the prompt (its labels or boxes) changed since the last run that ran to the end: the next run changes the
        #: whole result; else only corrections changed it, which change it only near them (stroke_reach "local")
        self.everywhere = True
        self.local = False  #: the running run keeps its labels only near the corrections
        self.watched: list = []  #: (event emitter, handler) pairs connected
        self.record: ResultRecord | None = None  #: the live result layer, what was written there, the corrections
        self.notes: dict = {}  #: the last prompt's notes (boxes, corrections), for the status line
        self.prompt = None  #: (segmenter, prompt, boxes) of the last run, for the layer's provenance
        self.error: str | None = None  #: the sentence the running run ended with, if it failed
        self.fresh = False  #: the live layer was made for the running run (removed if it fails unwritten)
        self.started = self.finished = self.stopped = 0  #: runs started, run to the end, stopped by a newer one
        #: perf_counter of the last stroke, of the last view update (attention) and of its final labels
        self.stroke_at = self.view_at = self.final_at = None
        check.changed.connect(self.toggled)  # a magicgui CheckBox

    # ---------------------------------------------------------------- switching on and off
    def toggled(self, on: bool) -> None:
        if not on:
            self.unwatch()
            self.timer.stop()
            if self.worker is not None:
                self.worker.quit()
            return
        try:
            self.widget.check_live()
        except FewcellError as err:
            self.check.value = False
            self.widget.status.setText(str(err))
            return
        self.watch()
        self.schedule()

    @property
    def layer(self):
        """The live result layer (None before the first run)."""
        return None if self.record is None else self.record.layer

    @property
    def corrections(self) -> np.ndarray | None:
        return None if self.record is None else self.record.corrections

    def watch(self) -> None:
        self.unwatch()
        emitters = [(getattr(layer.events, event), self.on_edit) for layer, event in self.widget.live_sources()]
        if self.layer is not None:
            emitters.append((self.layer.events.paint, self.on_correction))
        for emitter, handler in emitters:
            emitter.connect(handler)
        self.watched = emitters

    def unwatch(self) -> None:
        for emitter, handler in self.watched:
            emitter.disconnect(handler)
        self.watched = []

    # ---------------------------------------------------------------- events
    def on_edit(self, event=None) -> None:
        self.everywhere = True
        self.schedule()

    def on_correction(self, event=None) -> None:
        """A stroke on the live result: a correction. napari announces a stroke before it writes it, so the
        pixels are compared with what was written a moment later; meanwhile no stale patch is written."""
        self.hold = True
        QTimer.singleShot(0, self.harvest)

    def harvest(self) -> None:
        self.hold = False
        if self.record is not None and self.record.harvest(self.widget.viewer, self.boxes) is not None:
            self.schedule()

    def schedule(self) -> None:
        """(Re)start the debounce timer: one update DEBOUNCE_MS after the last of a burst of edits."""
        self.stroke_at = time.perf_counter()
        self.timer.start()

    # ---------------------------------------------------------------- runs
    def update(self) -> None:
        if self.worker is not None:  # one run at a time: stop the stale one, start when it has stopped
            self.pending = True
            self.worker.quit()
            return
        try:
            job, seg, session_key, view = self.widget.collect_live()
        except FewcellError as err:
            self.widget.status.setText(str(err))
            return
        self.boxes = job.boxes
        if self.session is None or self.session_key != session_key:
            self.session, self.session_key = LiveSession(seg, job.target), session_key
            self.record, self.everywhere = None, True
        self.ensure_layer(job)
        self.local = not self.everywhere and seg.params.stroke_reach == "local" and self.corrections is not None
        session, same = self.session, job.same_image
        corrections = self.corrections if same else [(job.target, self.corrections)]
        corrections = None if self.corrections is None else corrections

        def make():
            yield Progress(0, 0, "preparing the prompt")
            prompt = seg.prepare_prompt_boxes(job.prompt, job.labels, job.boxes, corrections,
                                              session.region_embeddings if same else None)
            self.notes, self.prompt = prompt.notes, (seg, prompt, job.boxes)
            yield from session.run(prompt, view)

        self.view_shown, self.unshown, self.error = False, 0, None
        self.worker = worker = _live_run(make)
        worker.yielded.connect(lambda item: self.on_item(worker, item))
        worker.returned.connect(lambda error: self.on_returned(worker, error))
        worker.finished.connect(lambda: self.on_finished(worker))
        self.started += 1
        worker.start()

    def ensure_layer(self, job) -> None:
        if self.layer is not None and self.layer in self.widget.viewer.layers:
            return
        self.fresh = True  #: made for the coming run: removed if that run fails before writing to it
        produced = np.zeros(job.target.shape[:2], np.uint8)
        layer = self.widget.viewer.add_labels(
            produced.copy(), name=f"{job.name} fewcell live", scale=job.target_layer.scale[-2:],
            translate=job.target_layer.translate[-2:], metadata={RESULT_KEY: True})
        self.record = ResultRecord(layer, produced, job.name, (), False, None, job.target)
        self.watch()

    def on_item(self, worker, item) -> None:
        if worker is not self.worker or self.layer is None or self.hold:
            return
        if isinstance(item, Patch):
            rec, labels = self.record, item.labels
            if rec.corrections is not None and self.local:  # a correction changes the result only near it
                labels = local_changes(rec.produced[item.rows, item.cols], labels,
                                       rec.corrections[item.rows, item.cols]).astype(labels.dtype, copy=False)
            elif rec.corrections is not None:  # what the user painted stays
                labels = apply_corrections(labels, rec.corrections[item.rows, item.cols])
            if labels.max(initial=0) > np.iinfo(rec.layer.data.dtype).max:
                rec.layer.data = rec.layer.data.astype(np.uint16)
                rec.produced = rec.produced.astype(np.uint16)
            rec.layer.data[item.rows, item.cols] = labels
            rec.produced[item.rows, item.cols] = labels
            self.unshown += 1
            if item.final or self.view_shown:  # the view's patches are shown together (one refresh)
                self.show()
        elif item.message == VIEW_DONE:
            self.show()
            self.view_shown = True
            self.view_at = time.perf_counter()
            self.widget.status.setText("Live: the view is updated (attention); adapting…")
        elif item.message == VIEW_FINAL:
            self.show()
            self.final_at = time.perf_counter()
            self.widget.status.setText("Live: the view is up to date; segmenting the rest…")

    def drop_unwritten_layer(self) -> None:
        """Remove the live layer made for a run that failed, when nothing was written to it (no empty result)."""
        layer = self.layer
        if self.fresh and layer is not None and not self.record.produced.any():
            self.record = None
            self.watch()  # no longer its paint events
            if layer in self.widget.viewer.layers:
                self.widget.viewer.layers.remove(layer)

    def show(self) -> None:
        if self.unshown:
            self.layer.refresh()
            self.unshown = 0

    def on_returned(self, worker, error) -> None:
        if worker is self.worker:
            self.error = error
        if worker is self.worker and error:
            self.widget.status.setText(error)

    def on_finished(self, worker) -> None:
        if worker is not self.worker:
            return
        if self.layer is not None and not self.pending:
            self.show()
        if self.pending:
            self.stopped += 1
        elif self.error:  # the sentence stays; a result layer made for this run and never written goes
            self.drop_unwritten_layer()
        else:
            self.finished += 1
            self.everywhere = False
            if self.layer is not None and self.prompt is not None:
                seg, prompt, boxes = self.prompt
                self.layer.metadata["fewcell"] = {**seg.provenance(prompt, boxes), "live": True}
            notes, self.fresh = corrections_text(self.notes), False
            self.widget.status.setText("Live: up to date." + (f" {notes}." if notes else ""))
        self.worker = None
        if self.pending:
            self.pending = False
            self.update()
