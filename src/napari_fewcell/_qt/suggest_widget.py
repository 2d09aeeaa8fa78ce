"""Dock widget for workflow 4: what to annotate next (paper 001).

Suggest tiles → Next (go there, a box and a labels layer to paint in) → Accept (refit on every
accepted tile, rescore the rest; the prediction layer updates in the background while the user
paints on) or Skip. Qt and napari glue only; the loop itself is
:class:`napari_fewcell.engine.suggest.Session`.
"""
from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Labels, Shapes
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QListWidget,
    QWidget,
)

from ..engine.core.errors import FewcellError
from ..engine.nets.msd import shipped_names
from ..engine.suggest import Session, SessionParams, SuggestParams
from ..engine.suggest.params import NO_MODEL
from .forms import ParamsForm, hbox, vbox
from .geometry import box_corners, camera_of, image_planes, image_shape, layer_data, to_world
from .jobs import job_controls
from .layers import RESULT_KEY, named_layer, watch_layers

SUGGESTIONS = "fewcell suggestions"
BOXES = "fewcell annotation boxes"  # also picked by default by the Few-shot support widget
PREDICTION = "fewcell prediction"
SCOPES = [("image", "current image"), ("all", "all open images")]  #: which images a session works on
AUTO = "auto (by image kind)"


def _after_round(session: Session, predict: bool):
    """What runs in the background after a round, while the user looks and paints: the prediction of every plane
    (yielded as one {plane: labels} dict when ready), then the features the next rescore needs
    (:meth:`Session.prepare_iter`). Returns None, or the sentence saying why the prediction failed."""
    if predict:
        preds = {}
        try:
            for i in range(len(session.arrs)):
                preds[i] = yield from session.predict_iter(i)
        except FewcellError as err:
            return str(err)
        yield preds
    try:
        yield from session.prepare_iter()
    except FewcellError:
        pass  # e.g. the settings changed under it: the next rescore computes what is missing
    return None


def _loop_iter(session: Session, refit: bool):
    """Refit if asked (the prediction follows in the background), then rescore; returns (refitted, suggestions)."""
    if refit:
        yield from session.refit_iter(predict=[])
    if not session.tiles_left():
        return refit, []
    return refit, (yield from session.suggest_iter())


class SuggestWidget(QWidget):
    """Rank tiles by how much the model would learn from them; annotate, accept, refit, repeat."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session: Session | None = None
        self._key = None  # what the session was made for: images, tile, model, network, pretext, device
        self.items: list[tuple[Image, int | None]] = []  # the session's planes: (layer, plane index or None)
        self.suggestions: list = []
        self.current: int | None = None  # index in self.suggestions of the tile being annotated
        self.state: dict[int, str] = {}  # suggestion index → "accepted" / "skipped"
        #: the background worker of the last round (its prediction, then the next rescore's features; None: idle)
        self.background = None
        self.prediction_due = False  # the model was refitted but its prediction has not reached the layer yet
        self.painted: dict[Image, Labels] = {}  # image → the labels layer Next chose for it (what Accept reads)

        self.settings = ParamsForm([
            ComboBox(name="scope", label="Images", choices=[(text, key) for key, text in SCOPES], value="image"),
            (SessionParams, "model"), (SuggestParams, "score"), (SessionParams, "score_with"), (SuggestParams, "tile"),
            (SuggestParams, "top"), (SuggestParams, "diverse"),
            ComboBox(name="network", label="First network", choices=[AUTO, *shipped_names()], value=AUTO,
                     tooltip="Scores the tiles until the first Accept (em_membrane for electron microscopy)."),
            (SessionParams, "pretext"), (SessionParams, "device"),
        ])
        self.settings.score.changed.connect(self._score_changed)
        self._score_changed()
        buttons = {"suggest": ("Suggest tiles", self._suggest), "next": ("Next", self._next),
                   "accept": ("Accept", self._accept), "skip": ("Skip", self._skip)}
        self.list = QListWidget()
        self.jobs = job_controls(self, buttons, "Open an image, then press Suggest tiles.")

        vbox(self, self.settings.native, self.suggest_button, self.list,
             hbox(self.next_button, self.accept_button, self.skip_button), self.cancel_button, self.progress,
             self.status, stretch=False)
        watch_layers(self.viewer, self._refresh)

    def _score_changed(self, *_) -> None:
        """What scores the tiles (the first network, its pretext task, the refitted model or the network) matters only
        to a model's score: greyed out for coverage and random."""
        model = self.settings.score.value not in NO_MODEL
        for name in ("score_with", "network", "pretext"):
            self.settings[name].enabled = model

    def _refresh(self):
        self.painted = {image: labels for image, labels in self.painted.items() if image in self.viewer.layers}
        # a session whose image layers were removed is stale
        if self._closed(self.items):
            self.stop_background()
            self.prediction_due = False
            self.session, self._key, self.items, self.suggestions, self.current = None, None, [], [], None
            self.list.clear()

    def _closed(self, items: list) -> bool:
        """Whether an image of ``items`` (a session's planes) is no longer in the viewer."""
        return any(layer not in self.viewer.layers for layer, _ in items)

    # ----------------------------------------------------------------- session
    def _images(self) -> list[Image]:
        images = [lay for lay in self.viewer.layers if isinstance(lay, Image)]
        if not images:
            raise FewcellError("Open an image first.")
        if self.settings.scope.value == "all":
            return images
        active = self.viewer.layers.selection.active
        return [active] if isinstance(active, Image) else [images[0]]

    def _params(self) -> SessionParams:
        form = self.settings
        network = None if form.network.value == AUTO else form.network.value
        return SessionParams(**{**form.values(SessionParams), "network": network,
                                "suggest": SuggestParams(**form.values(SuggestParams))})

    def _session(self) -> tuple[Session, tuple, list]:
        """The current session, or a new one if the images or settings that shape it changed
        (made ready here, but the widget switches to it only when its first scoring succeeds)."""
        images, p = self._images(), self._params()
        key = (tuple(id(lay) for lay in images), p.suggest.tile, p.model, p.network, p.pretext, p.device)
        if self.session is not None and key == self._key:
            self.session.params.suggest = p.suggest  # score, top and the scorer may change between rounds
            self.session.params.score_with = p.score_with
            return self.session, key, self.items
        items, planes, names = [], [], []
        for lay in images:
            for z, plane in enumerate(image_planes(lay)):
                items.append((lay, z if lay.ndim == 3 else None))
                planes.append(plane)
                names.append(lay.name + (f" plane {z}" if lay.ndim == 3 else ""))
        session = Session(planes, names, p)
        if self.session is not None and self._key[:2] == key[:2]:  # same images and tiles: keep the work done
            session.accepted = dict(self.session.accepted)
            session.skipped = {i: list(b) for i, b in self.session.skipped.items()}
        return session, key, items

    # ----------------------------------------------------------------- suggest
    def _collect_suggest(self) -> dict:
        session, key, items = self._session()

        def done(result):
            if self._closed(items):  # the suggestions would point into a closed image: keep nothing of them
                return self.jobs.fail("The image was closed while suggesting; press Suggest tiles again.")
            self.session, self._key, self.items = session, key, items
            self._loop_done(result)

        refit = bool(session.accepted) and session.model is None  # e.g. the model kind changed: refit first
        return {"make": lambda: _loop_iter(session, refit=refit), "done": done}

    def _suggest(self):
        self.stop_background()
        self.jobs.cancelled_text = "Cancelled; the suggestions are as they were."
        self.jobs.start(self._collect_suggest, "Scoring tiles…")

    def _loop_done(self, result):
        refitted, hits = result
        self.suggestions, self.current, self.state = hits, None, {}
        self._show_suggestions()
        fitted = "" if not refitted else (f"Refitted on {len(self.session.accepted)} accepted tile(s); "
                                          f"'{PREDICTION}' is being updated. ")
        self.status.setText(fitted + (f"{len(hits)} tiles suggested; press Next to annotate the first."
                                      if hits else "Every tile is annotated or skipped."))
        self.prediction_due = self.prediction_due or refitted
        self._after_round(self.prediction_due)

    # ----------------------------------------------------------------- in the background, after a round
    def _after_round(self, predict: bool):
        """While the user looks and paints, predict every plane (the prediction layer updates when ready) and
        compute what the next rescore needs; Accept, Suggest tiles or a new session stop it (the features computed
        so far are kept)."""
        self.stop_background()
        worker = create_worker(_after_round, self.session, predict, _start_thread=False)
        round_text = self.status.text()

        def predicted(value):
            if self.background is worker and isinstance(value, dict):
                self._show_predictions(value)
                self.prediction_due = False
                if self.status.text() == round_text:
                    self.status.setText(round_text.replace("is being updated", "updated"))

        def returned(error):
            if self.background is worker and error:
                self.jobs.fail(f"The prediction was not updated: {error}")

        worker.yielded.connect(predicted)
        worker.returned.connect(returned)
        worker.finished.connect(lambda: self.background is worker and setattr(self, "background", None))
        self.background = worker
        worker.start()

    def stop_background(self):
        """Stop the last round's background work after its current step."""
        if self.background is not None:
            self.background.quit()
            self.background = None

    def _show_suggestions(self):
        self.list.clear()
        rects, ranks, scores = [], [], []
        shapes = self._shapes_layer(SUGGESTIONS, edge_color="cyan")
        for k, h in enumerate(self.suggestions):
            layer, z = self.items[h.image]
            y, x, hh, ww = h.box
            where = "" if z is None else f" plane {z}"
            mark = f" — {self.state[k]}" if k in self.state else ""
            self.list.addItem(f"{h.rank}. {layer.name}{where}: y {y}, x {x} ({hh}×{ww}) — score {h.score:.4f}{mark}")
            rects.append(self._world_rect(shapes, layer, z, h.box))
            ranks.append(h.rank)
            scores.append(h.score)
        shapes.data = []
        if rects:
            shapes.add_rectangles(rects, edge_color="cyan", face_color="transparent", edge_width=2)
            shapes.features = {"rank": ranks, "score": scores}
            shapes.text = {"string": "#{rank} {score:.3f}", "color": "cyan", "anchor": "upper_left", "size": 10}
        if self.current is not None:
            self.list.setCurrentRow(self.current)

    # ----------------------------------------------------------------- geometry
    def _shapes_layer(self, name: str, edge_color: str) -> Shapes:
        layer = named_layer(self.viewer, name, Shapes)
        if layer is None:
            ref = self.items[0][0]
            ndim = max(lay.ndim for lay, _ in self.items)
            layer = self.viewer.add_shapes(ndim=ndim, name=name, edge_color=edge_color, face_color="transparent",
                                           scale=ref.scale[-ndim:] if ref.ndim == ndim else None,
                                           translate=ref.translate[-ndim:] if ref.ndim == ndim else None)
        return layer

    def _point(self, layer: Image, z: int | None):
        """The world point showing plane z of ``layer`` (the current point for a 2D image)."""
        point = np.array(self.viewer.dims.point, float)
        if z is not None:
            data = np.array(layer.world_to_data(point[-layer.ndim:]), float)
            data[0] = z
            point[-layer.ndim:] = layer.data_to_world(data)
        return point

    def _world_rect(self, shapes: Shapes, layer: Image, z: int | None, box) -> np.ndarray:
        rect = box_corners(shapes, layer, box, self._point(layer, z))
        rect[:, :-2] = np.round(rect[:, :-2])
        return rect

    # ----------------------------------------------------------------- next / skip / accept
    def _next(self, after_skip: bool = False):
        if not self.suggestions:
            return self.jobs.fail("There are no suggestions yet; press Suggest tiles first.")
        todo = [k for k in range(len(self.suggestions)) if k not in self.state]
        if self.current is not None and self.current in todo and not after_skip:
            todo = todo[todo.index(self.current) + 1:] + todo[: todo.index(self.current)]
        if not todo:
            return self.jobs.fail("Every suggestion is handled; press Suggest tiles for more.")
        self.current = todo[0]
        h = self.suggestions[self.current]
        layer, z = self.items[h.image]
        point = self._point(layer, z)
        if z is not None:
            self.viewer.dims.set_point(range(len(point)), tuple(point))
        y, x, hh, ww = h.box
        centre = to_world(layer, (y + hh / 2, x + ww / 2), point)
        camera = camera_of(self.viewer)
        camera.center = tuple(centre)
        canvas = getattr(self.viewer, "_canvas_size", None)
        if canvas is not None and min(canvas) > 0:
            camera.zoom = 0.8 * min(canvas) / (max(hh, ww) * float(max(layer.scale[-2:])))
        boxes = self._shapes_layer(BOXES, edge_color="yellow")
        rect = self._world_rect(boxes, layer, z, h.box)
        if not any(np.allclose(np.asarray(r, float), rect) for r in boxes.data if np.shape(r) == rect.shape):
            boxes.add_rectangles(rect, edge_color="yellow", face_color="transparent", edge_width=2)
        labels = self._labels_layer(layer)
        self.viewer.layers.selection.active = labels
        labels.mode, labels.selected_label = "paint", 1
        self.list.setCurrentRow(self.current)
        where = "" if z is None else f" plane {z}"
        self.status.setText(f"Suggestion {h.rank}: paint structures (1, 2, …) and background (0) inside the yellow "
                            f"box on '{layer.name}'{where} in '{labels.name}', then press Accept (or Skip).")

    def _labels_layer(self, image: Image) -> Labels:
        """The layer to paint ``image``'s tiles in, remembered for Accept: the one chosen before, else '<image>
        labels', else '<image> fewcell labels' (while a Labels layer of the image's shape), else a new one."""
        shape, layers = image_shape(image), self.viewer.layers
        names = [f"{image.name} labels", f"{image.name} fewcell labels"]
        candidates = [self.painted.get(image)] + [layers[n] for n in names if n in layers]
        fits = [lay for lay in candidates if isinstance(lay, Labels) and lay in layers]
        fits = [lay for lay in fits if layer_data(lay).shape == shape]
        if fits:
            labels = fits[0]
        else:
            name = names[0] if names[0] not in layers else names[1]
            labels = self.viewer.add_labels(np.zeros(shape, np.uint8), name=name, scale=image.scale,
                                            translate=image.translate)
        self.painted[image] = labels
        return labels

    def _skip(self):
        if self.current is None:
            return self.jobs.fail("There is no suggestion to skip; press Next first.")
        h = self.suggestions[self.current]
        self.session.skip(h.image, h.box)
        self.state[self.current] = "skipped"
        self._mark()
        self._next(after_skip=True)

    def _mark(self):
        for k, text in self.state.items():
            item = self.list.item(k)
            if item is not None and not item.text().endswith(text):
                item.setText(f"{item.text()} — {text}")

    def _collect_accept(self) -> dict:
        if self.session is None or self.current is None:
            raise FewcellError("There is no tile to accept; press Suggest tiles, then Next, and paint the tile.")
        h = self.suggestions[self.current]
        layer, z = self.items[h.image]
        labels = self.painted.get(layer)  # the layer Next told the user to paint in
        if labels is None or labels not in self.viewer.layers:
            raise FewcellError(f"The labels layer of '{layer.name}' was removed; press Next to make a new one and "
                               "paint in it.")
        if layer_data(labels).shape != image_shape(layer):
            raise FewcellError(f"'{labels.name}' no longer has the shape of '{layer.name}'; press Next to get a "
                               "layer to paint in.")
        plane = np.asarray(layer_data(labels)[z] if z is not None else layer_data(labels))
        self.session.accept(h.image, h.box, plane)
        self.state[self.current] = "accepted"
        self._mark()
        session, items = self.session, self.items

        def done(result):
            if self.session is not session or self._closed(items):  # the image was closed: the session is gone
                return self.jobs.fail("The image was closed while refitting; press Suggest tiles again.")
            self._loop_done(result)

        return {"make": lambda: _loop_iter(session, refit=True), "done": done}

    def _accept(self):
        self.stop_background()
        self.jobs.cancelled_text = ("Cancelled; the tile stays accepted but the model and the prediction are as "
                                    "they were — press Accept again to refit.")
        self.jobs.start(self._collect_accept, "Refitting on the accepted tiles…")

    # ----------------------------------------------------------------- predictions
    def _show_predictions(self, preds: dict):
        by_layer: dict = {}
        for i, lab in preds.items():
            layer, z = self.items[i]
            by_layer.setdefault(layer, {})[z] = lab
        for layer, planes in by_layer.items():
            if layer.ndim == 3:
                first = next(iter(planes.values()))
                data = np.zeros(image_shape(layer), first.dtype)
                for z, lab in planes.items():
                    data[z] = lab
            else:
                data = planes[None]
            name = f"{layer.name} {PREDICTION}"
            old = named_layer(self.viewer, name, Labels)
            if old is not None and old.metadata.get(RESULT_KEY) and old.data.shape == data.shape:
                old.data = data  # the prediction layer updates in place
            else:
                self.viewer.add_labels(data, name=name, scale=layer.scale, translate=layer.translate,
                                       metadata={RESULT_KEY: True}, opacity=0.5)
