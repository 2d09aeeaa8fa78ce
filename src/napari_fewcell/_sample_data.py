"""napari samples, each an image with a painted 64×64 prompt box: CC0 DSB2018 fluorescence nuclei, and MIT
Usiigaci phase-contrast cells (sample_data/README.md)."""
from __future__ import annotations

import json
from importlib import resources

import tifffile

SPECS = {"nuclei": "nuclei_prompt.json", "phase contrast": "phase_contrast_prompt.json"}


def sample_paths(kind: str = "nuclei") -> dict:
    root = resources.files("napari_fewcell.sample_data")
    spec = json.loads((root / SPECS[kind]).read_text())
    return {
        "image": root / spec["image"],
        "prompt_labels": root / spec["prompt_labels"],
        "box": tuple(spec["box"]),
    }


def sample_layers(kind: str) -> list:
    """The image, its prompt labels (painted inside the box only) and the prompt box, as napari layer data."""
    p = sample_paths(kind)
    image = tifffile.imread(p["image"])
    labels = tifffile.imread(p["prompt_labels"])
    y, x, h, w = p["box"]
    rect = [[y, x], [y, x + w], [y + h, x + w], [y + h, x]]
    return [
        (image, {"name": kind}, "image"),
        (labels, {"name": f"{kind} prompt labels"}, "labels"),
        ([rect], {"name": "fewcell prompt boxes", "shape_type": "rectangle", "edge_color": "lime",
                  "face_color": "transparent", "edge_width": 2}, "shapes"),
    ]


def nuclei_sample():
    return sample_layers("nuclei")


def phase_contrast_sample():
    return sample_layers("phase contrast")
