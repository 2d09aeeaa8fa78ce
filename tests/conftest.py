import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


@pytest.fixture(scope="session")
def sample():
    import tifffile

    spec = json.loads((SAMPLE / "nuclei_prompt.json").read_text())
    return {
        "image": tifffile.imread(SAMPLE / spec["image"]),
        "prompt_labels": tifffile.imread(SAMPLE / spec["prompt_labels"]),
        "truth": tifffile.imread(SAMPLE / "nuclei_labels.tif"),
        "box": tuple(spec["box"]),
        "paths": {k: SAMPLE / spec[k] for k in ("image", "prompt_labels")},
    }


def blobs(shape=(128, 128), seed=0, n=12, radius=7):
    """Synthetic bright disks on a dark noisy background, and their mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, np.uint8)
    for _ in range(n):
        cy, cx = rng.integers(radius, shape[0] - radius), rng.integers(radius, shape[1] - radius)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1
    img = (40 + 150 * mask + rng.normal(0, 10, shape)).clip(0, 255).astype(np.uint8)
    return img, mask


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (widget tests: the machine may be shared), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def blob_image():
    return blobs()


def dice_mean(pred, truth):
    """The paper's metric: mean of foreground and background Dice."""
    out = []
    for v in (1, 0):
        p, t = pred == v, truth == v
        out.append(2 * (p & t).sum() / max(1, p.sum() + t.sum()))
    return float(np.mean(out))


JOB_TIMEOUT = 180_000  # ms a widget job may take in tests; the CPU may be shared with other jobs


def click_and_wait(qtbot, widget, button, timeout: int = JOB_TIMEOUT):
    """Click a widget's button and wait until the job it started (through ``widget.jobs``) is over."""
    from qtpy.QtCore import Qt

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=timeout)


@pytest.fixture
def viewer_widget(make_napari_viewer):
    """A napari viewer with the prompt-segmentation widget docked."""
    from napari_fewcell._qt.prompt_widget import PromptSegmentationWidget

    viewer = make_napari_viewer()
    widget = PromptSegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    return viewer, widget


def form_segmenter(widget):
    """A Segmenter with the settings the prompt widget's form shows (what a user chose there), for the engine's
    reference labels."""
    from napari_fewcell.engine import Segmenter

    return Segmenter(widget.params())
