"""Headless demo: open the nuclei sample in napari, segment it with the dock widget, save labels + screenshot.

    python scripts/headless_demo.py --out demo_out [--docs] [--workflow prompt|support|suggest]

``--workflow support`` does the same with the Few-shot support widget: a perceptron on MSD
features fitted on the sample's one painted 64×64 box, applied to the whole image
(screenshot: <out>/screenshot_support.png; --docs copies it to docs/screenshot_support.png).
``--workflow suggest`` drives "What to annotate next": Suggest tiles (128²), Next, the sample's
true labels painted inside the suggested tile (as a user would), Accept — the perceptron refits
and the prediction layer appears (screenshot_suggest.png).

``--workflow he --image IMG --labels LAB`` shows issue 22's GUI items on a colour H&E image (e.g. DSB 2018 H&E, CC0,
from ../shared/data): Segment before any box (the status says what to do: screenshot_he_nobox.png), Add prompt
box (lime, its width fitted to the image), the box painted with the image's true labels as a user would,
Segment: the one-class result in cyan over H&E (screenshot_he.png).

Without a display (DISPLAY unset) it starts its own Xvfb and stops it at the end. Writes
<out>/nuclei.tif (the labels) and <out>/screenshot.png (the whole window with the docked widget);
exits 1 with a message if the segmentation fails, times out, or the screenshot comes out blank.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN, SAMPLE, WIDGET = "napari-fewcell", "nuclei", "Prompt segmentation"
RESULT = "nuclei fewcell"


def fail(message: str) -> None:
    print(f"headless_demo: error: {message}", file=sys.stderr)
    sys.exit(1)


def start_xvfb() -> subprocess.Popen:
    """Start Xvfb on a free display number (Xvfb picks it: -displayfd) and set DISPLAY."""
    if shutil.which("Xvfb") is None:
        fail("no DISPLAY and no Xvfb: install it (apt-get install xvfb) or run under a desktop session.")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # written once the server accepts connections
    if not number.isdigit():
        proc.kill()
        fail("Xvfb did not start (no display number reported).")
    os.environ["DISPLAY"] = f":{number}"
    return proc


def wait_for(app, condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


WORKFLOWS = {  # widget, the button that runs it, result layer, labels file, screenshot
    "prompt": ("Prompt segmentation", "segment_button", RESULT, "nuclei.tif", "screenshot.png"),
    "support": ("Few-shot support", "apply_button", "nuclei fewcell perceptron", "nuclei_perceptron.tif",
                "screenshot_support.png"),
    "suggest": ("What to annotate next", "accept_button", "nuclei fewcell prediction", "nuclei_suggest.tif",
                "screenshot_suggest.png"),
}


def shot(viewer, app, png: Path) -> Path:
    """The whole window as ``png``; fails if it comes out blank."""
    import numpy as np

    wait_for(app, lambda: False, 1.0)  # let the canvas redraw
    pixels = np.asarray(viewer.screenshot(str(png), canvas_only=False, flash=False))
    if float(pixels[..., :3].std()) < 5.0:
        fail(f"the screenshot {png} is blank; is OpenGL working on this display?")
    return png


def run_he(out: Path, timeout: float, image: str, labels: str) -> list[Path]:
    """Issue 22 items 7–10 on an H&E image: no box yet, then a lime box, painted, segmented in cyan."""
    import napari
    import tifffile
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title="napari-fewcell on H&E")
    try:
        app = QApplication.instance()
        viewer.window.resize(1500, 950)
        viewer.add_image(tifffile.imread(image), name="H&E", rgb=True)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
        wait_for(app, lambda: False, 0.5)
        viewer.reset_view()
        widget.segment_button.click()  # no box yet: one sentence saying what to do
        wait_for(app, lambda: "No prompt box" in widget.status.text(), 10)
        print(f"no box:     {widget.status.text()}")
        shots = [shot(viewer, app, out / "screenshot_he_nobox.png")]
        widget.add_box_button.click()
        y, x = (int(v) for v in viewer.layers["fewcell prompt boxes"].data[-1].min(0)[-2:])
        truth = tifffile.imread(labels) > 0
        layer = viewer.layers["H&E prompt labels"]
        layer.data[y : y + 64, x : x + 64] = truth[y : y + 64, x : x + 64]
        layer.refresh()
        widget.segment_button.click()
        wait_for(app, lambda: "H&E fewcell" in viewer.layers or widget.segment_button.isEnabled(), timeout)
        wait_for(app, widget.segment_button.isEnabled, timeout)
        if "H&E fewcell" not in viewer.layers:
            fail(f"segmentation failed; widget status: {widget.status.text()!r}")
        print(f"segmented:  {widget.status.text()}")
        return [*shots, shot(viewer, app, out / "screenshot_he.png")]
    finally:
        viewer.close()


def fit_support(viewer, app, widget, timeout: float) -> None:
    """The Few-shot support widget fitted on the sample's painted box, as a user does it."""
    shapes = [lay.name for lay in viewer.layers if lay.__class__.__name__ == "Shapes"]
    widget.shapes_combo.pick(shapes[0])
    widget.fit_button.click()
    wait_for(app, lambda: widget.model is not None or widget.fit_button.isEnabled(), timeout)
    wait_for(app, widget.fit_button.isEnabled, timeout)
    if widget.model is None:
        fail(f"fitting failed; widget status: {widget.status.text()!r}")


def annotate_suggested(viewer, app, widget, timeout: float) -> None:
    """Suggest tiles (128²), go to the best one and paint it with the sample's true labels, as a user would."""
    from importlib import resources

    import numpy as np
    import tifffile

    widget.settings.tile.value = 128
    widget.suggest_button.click()
    wait_for(app, lambda: not widget.jobs.busy, timeout)
    if not widget.suggestions:
        fail(f"no suggestions; widget status: {widget.status.text()!r}")
    widget.next_button.click()
    truth = tifffile.imread(str(resources.files("napari_fewcell.sample_data") / "nuclei_labels.tif")) > 0
    y, x, h, w = widget.suggestions[widget.current].box
    labels = viewer.layers["nuclei labels"]
    data = np.asarray(labels.data).copy()
    data[y : y + h, x : x + w] = truth[y : y + h, x : x + w]
    labels.data = data


def run(out: Path, timeout: float, workflow: str = "prompt") -> Path:
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_fewcell._sample_data import sample_paths
    from napari_fewcell.engine.core.files import write_labels_tif

    viewer = napari.Viewer(show=True, title="napari-fewcell demo")
    try:
        app = QApplication.instance()
        viewer.window.resize(1500, 950)
        name, button_name, result, tif_name, png_name = WORKFLOWS[workflow]
        viewer.open_sample(PLUGIN, SAMPLE)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        wait_for(app, lambda: False, 0.5)  # let the window lay itself out
        viewer.reset_view()  # fit the image to the canvas as it is now, with the widget docked
        button = getattr(widget, button_name)
        if workflow == "support":  # fit on the sample's painted box first: boxes = the sample's Shapes layer
            fit_support(viewer, app, widget, timeout)
        if workflow == "suggest":  # suggest, go to the best tile and "paint" it with the sample's truth
            annotate_suggested(viewer, app, widget, timeout)
        button.click()
        idle = lambda: button.isEnabled() and getattr(widget, "background", None) is None  # noqa: E731
        done = wait_for(app, lambda: result in viewer.layers or idle(), timeout)  # suggest: it predicts after
        if result not in viewer.layers:
            why = f"timed out after {timeout:.0f} s" if not done else "no result layer was added"
            fail(f"segmentation failed ({why}); widget status: {widget.status.text()!r}")
        wait_for(app, idle, timeout)
        if workflow == "suggest":
            viewer.reset_view()  # the whole image: the suggestions, the accepted box and the prediction
        labels = viewer.layers[result].data
        tif = write_labels_tif(out / tif_name, labels, source=Path(str(sample_paths()["image"])).name,
                               overwrite=True)

        wait_for(app, lambda: False, 1.0)  # let the canvas redraw with the result layer
        png = out / png_name
        shot = np.asarray(viewer.screenshot(str(png), canvas_only=False, flash=False))
        std = float(shot[..., :3].std())
        if std < 5.0:
            fail(f"the screenshot {png} is blank (pixel std {std:.2f}); is OpenGL working on this display?")
        print(f"labels:     {tif}  ({labels.shape[0]}×{labels.shape[1]}, values {np.unique(labels).tolist()})")
        print(f"screenshot: {png}  ({shot.shape[1]}×{shot.shape[0]} px, status: {widget.status.text()})")
        return png
    finally:
        viewer.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo_out", help="output folder (created if missing)")
    ap.add_argument("--docs", action="store_true", help="also copy the screenshot to docs/screenshot.png")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for the segmentation")
    ap.add_argument("--image", help="--workflow he: a colour H&E image (TIFF)")
    ap.add_argument("--labels", help="--workflow he: its labels (painted inside the box as a user would)")
    ap.add_argument("--workflow", choices=[*sorted(WORKFLOWS), "he"], default="prompt",
                    help="prompt: Prompt segmentation (default); support: Few-shot support (perceptron); "
                    "suggest: What to annotate next (suggest, annotate one tile, accept)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    xvfb = None
    if not os.environ.get("DISPLAY"):
        if os.environ.pop("QT_QPA_PLATFORM", None):
            print("headless_demo: ignoring QT_QPA_PLATFORM (screenshots need Xvfb's xcb platform)")
        xvfb = start_xvfb()
    try:
        if args.workflow == "he" and not (args.image and args.labels):
            fail("--workflow he needs --image and --labels (e.g. ../shared/data/dsb2018_he/images/012.tif and "
                 "labels/012.tif).")
        pngs = run_he(out, args.timeout, args.image, args.labels) if args.workflow == "he" else \
            [run(out, args.timeout, args.workflow)]
        for png in pngs if args.docs else []:
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(png, ROOT / "docs" / png.name)
            print(f"copied to:  {ROOT / 'docs' / png.name}")
    finally:
        if xvfb is not None:
            xvfb.terminate()
            try:
                xvfb.wait(5)
            except subprocess.TimeoutExpired:
                xvfb.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
