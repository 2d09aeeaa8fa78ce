"""napari sample: a CC0 DSB2018 fluorescence nuclei image with a painted 64×64 prompt box."""
from __future__ import annotations

import json
from importlib import resources

import tifffile


def sample_paths() -> dict:
    root = resources.files("napari_fewcell.sample_data")
    spec = json.loads((root / "nuclei_prompt.json").read_text())
    return {
        "image": root / spec["image"],
        "prompt_labels": root / spec["prompt_labels"],
        "box": tuple(spec["box"]),
    }


def nuclei_sample():
    p = sample_paths()
    image = tifffile.imread(p["image"])
    labels = tifffile.imread(p["prompt_labels"])
    y, x, h, w = p["box"]
    rect = [[y, x], [y, x + w], [y + h, x + w], [y + h, x]]
    return [
        (image, {"name": "nuclei"}, "image"),
        (labels, {"name": "nuclei prompt labels"}, "labels"),
        ([rect], {"name": "fewcell prompt boxes", "shape_type": "rectangle", "edge_color": "yellow",
                  "face_color": "transparent", "edge_width": 2}, "shapes"),
    ]
