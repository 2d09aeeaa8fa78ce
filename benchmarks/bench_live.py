"""Live update latency (issue 14, item 2): the real prompt widget in a real napari viewer, headless under Xvfb.

A 2044×2048 phase-contrast mosaic (four usiigaci test images, 2×2) is shown at zoom 1 on a 1024×1024 canvas, so
the field of view is about 1024×1024 image pixels. One 64×64 prompt box in view is painted with its true labels;
"Live" is ticked (the first run embeds the whole image once: reported apart). Then 10 brush strokes are painted
on the prompt labels, one at a time, through napari's own ``Labels.paint`` (one paint event each, as a mouse
stroke); for each, the time from the stroke to the moment the field of view's labels (by attention) are all
written into the live result layer (the debounce of 300 ms included), to the view's labels by the chosen path
(after the adaptation), and to the end of the whole run.

    xvfb-run -a -s "-screen 0 1800x1400x24" python benchmarks/bench_live.py --data ../shared/data \\
        --out benchmarks/results/live.md
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tifffile
from common import finish_report, log, report_header, set_threads

SET = "usiigaci_phase_contrast_cells"


def mosaic(root: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [line.split(",") for line in (root / SET / "split.csv").read_text().split()[1:]]
    ids = [i for i, s in rows if s == "test"][:4]
    imgs = [tifffile.imread(root / SET / "images" / f"{i}.tif") for i in ids]
    labs = [(tifffile.imread(root / SET / "labels" / f"{i}.tif") > 0).astype(np.uint8) for i in ids]
    return (np.block([[imgs[0], imgs[1]], [imgs[2], imgs[3]]]), np.block([[labs[0], labs[1]], [labs[2], labs[3]]]))


def wait(app, cond, timeout=120.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the live update did not come")
    return time.perf_counter()


def settle(app, n: int = 20) -> None:
    for _ in range(n):
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--strokes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapt", default="auto")
    ap.add_argument("--fov", type=int, default=1024, help="canvas edge in pixels, shown at zoom 1")
    ap.add_argument("--out", default="results/live.md")
    a = ap.parse_args()
    set_threads(a.threads)
    s = open_viewer(a)
    t0 = time.perf_counter()
    s.widget.live_check.value = True
    s.switch_on = wait(s.app, lambda: s.widget.live.finished == 1, 600) - t0
    log(f"switched on: {s.switch_on:.1f} s; {s.widget.status.text()}")
    to_view, to_final, to_end = strokes(a, s)
    finish_report(report(a, s, to_view, to_final, to_end), a.out)
    s.viewer.close()


def open_viewer(a) -> SimpleNamespace:
    """A shown viewer with the widget docked, the mosaic at zoom 1 on a canvas of ``--fov``², and a prompt box in
    view painted with the true labels, chosen in the widget as a user does."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_fewcell._qt.geometry import camera_of
    from napari_fewcell._qt.prompt_widget import BOX_LAYER, PromptSegmentationWidget

    img, truth = mosaic(Path(a.data))
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    layer = viewer.add_image(img, name="phase")
    canvas, win = viewer.window._qt_viewer.canvas.native, viewer.window._qt_window
    for _ in range(4):  # the window's size that gives a 1024×1024 canvas (the dock widget takes the rest)
        settle(app)
        win.resize(a.fov + win.width() - canvas.width(), a.fov + win.height() - canvas.height())
    settle(app)
    camera_of(viewer).center = (img.shape[0] / 2, img.shape[1] / 2)
    camera_of(viewer).zoom = 1.0
    settle(app)
    (y0, x0), (y1, x1) = np.asarray(layer.corner_pixels)
    view = (int(y1 - y0), int(x1 - x0))
    log(f"canvas {canvas.width()}×{canvas.height()}, view {view}")
    cy, cx = int(camera_of(viewer).center[-2]), int(camera_of(viewer).center[-1])
    box = (cy - 32 + 100, cx - 32 + 100, 64, 64)
    labels = viewer.add_labels(np.zeros(img.shape, np.uint8), name="phase prompt labels")
    by, bx, bh, bw = box
    labels.data[by : by + bh, bx : bx + bw] = truth[by : by + bh, bx : bx + bw]
    viewer.add_shapes([[[by, bx], [by + bh, bx + bw]]], shape_type="rectangle", name=BOX_LAYER)
    widget.labels_combo.pick("phase prompt labels")
    widget.shapes_combo.pick(BOX_LAYER)
    widget.settings.adapt.value = a.adapt
    return SimpleNamespace(viewer=viewer, app=app, widget=widget, img=img, labels=labels, box=box, view=view,
                           canvas=canvas, zoom=camera_of(viewer).zoom)


def strokes(a, s: SimpleNamespace) -> tuple[list, list, list]:
    """``--strokes`` small strokes inside the box, each timed to the view updated, the view final, the run's end."""
    live, labels, (by, bx, bh, bw) = s.widget.live, s.labels, s.box
    rng = np.random.default_rng(0)
    to_view, to_final, to_end = [], [], []
    labels.brush_size = 3
    for k in range(a.strokes):
        y, x = by + int(rng.integers(4, bh - 4)), bx + int(rng.integers(4, bw - 4))
        value = 1 - int(labels.data[y, x])  # flip a small disc: a real change, one paint event
        before = live.finished
        t0 = time.perf_counter()
        labels.paint((y, x), value)
        seen = wait(s.app, lambda: live.view_at is not None and live.view_at > t0)
        final = wait(s.app, lambda: live.final_at is not None and live.final_at > t0, 600)
        end = wait(s.app, lambda: live.finished > before, 600)
        to_view.append(seen - t0)
        to_final.append(final - t0)
        to_end.append(end - t0)
        log(f"stroke {k + 1}: view {to_view[-1]:.3f} s, view final {to_final[-1]:.2f} s, whole run {to_end[-1]:.2f} s")
    return to_view, to_final, to_end


def report(a, s: SimpleNamespace, to_view, to_final, to_end) -> list[str]:
    img, view, live = s.img, s.view, s.widget.live
    rep = report_header("Live update latency (the real widget, headless)", False)
    return rep + [
        f"- image {img.shape[0]}×{img.shape[1]} (2×2 mosaic of {SET} test images); canvas "
        f"{s.canvas.width()}×{s.canvas.height()} at zoom {s.zoom:.3f}: field of view {view[0]}×{view[1]} "
        f"image pixels; one 64×64 prompt box in view at {s.box[:2]}; adapt `{a.adapt}` (path chosen: "
        f"{live.layer.metadata.get('fewcell', {}).get('adapt_path')}); {a.threads} torch threads",
        f"- switching Live on (embeds the whole image once, then segments it): {s.switch_on:.1f} s",
        "", "| | median | min | max |", "|---|---|---|---|",
        f"| stroke → field of view updated (s; 300 ms debounce included) | {np.median(to_view):.3f} | "
        f"{min(to_view):.3f} | {max(to_view):.3f} |",
        f"| stroke → field of view by the chosen path (`{a.adapt}`: adaptation + its labels of the view's tiles; s) | "
        f"{np.median(to_final):.2f} | {min(to_final):.2f} | {max(to_final):.2f} |",
        f"| stroke → whole image done by the chosen path (s) | {np.median(to_end):.2f} | {min(to_end):.2f} | "
        f"{max(to_end):.2f} |",
        "", f"- target: field of view updated ≤ 1 s after the stroke (median of {a.strokes}): "
        f"**{'met' if np.median(to_view) <= 1 else 'not met'}** ({np.median(to_view):.3f} s)",
        f"- final status: {s.widget.status.text()}",
    ]


if __name__ == "__main__":
    main()
