"""Layer geometry shared by the dock widgets: the 2D planes of a layer, boxes, world ↔ data coordinates."""
from __future__ import annotations

import numpy as np

from ..engine.core.errors import FewcellError


def layer_data(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def shape2d(layer) -> tuple[int, int]:
    shape = layer_data(layer).shape
    return tuple(shape[-3:-1] if getattr(layer, "rgb", False) else shape[-2:])


def plane_at(layer, point) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2D plane of ``layer`` at the world ``point`` (viewer.dims.point) and its leading indices."""
    data, lead = layer_data(layer), layer.ndim - 2
    if lead <= 0:
        return np.asarray(data), ()
    pos = layer.world_to_data(point)
    idx = tuple(int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(pos[:lead], data.shape[:lead]))
    return np.asarray(data[idx]), idx


def whole_stack(layer) -> np.ndarray:
    """All planes of a Z×Y×X (or T×Y×X, RGB too) layer as one array; a sentence for more leading axes."""
    lead = layer.ndim - 2
    if lead != 1:
        raise FewcellError(f"'Segment the whole stack' takes a Z×Y×X (or T×Y×X) image; '{layer.name}' has {lead} "
                           "axes before Y and X: segment the plane shown instead.")
    return np.asarray(layer_data(layer))


def to_world(layer, yx, point) -> np.ndarray:
    """World (y, x) of the data (y, x) of ``layer``'s plane shown at ``point``."""
    data = np.array(layer.world_to_data(point), float)
    data[-2:] = yx
    return np.asarray(layer.data_to_world(data), float)[-2:]


def from_world(layer, yx, point) -> np.ndarray:
    """Full data coordinates in ``layer`` of the world (y, x) on the plane shown at ``point``."""
    world = np.array(point, float)[-layer.ndim:]
    world[-2:] = yx
    return np.asarray(layer.world_to_data(world), float)


def image_shape(layer) -> tuple[int, ...]:
    shape = layer_data(layer).shape
    return tuple(shape[:-1] if getattr(layer, "rgb", False) else shape)


def image_planes(layer) -> list[np.ndarray]:
    """The 2D planes of an Image layer: one for a 2D (or RGB) image, Z for a Z×Y×X stack."""
    if layer.ndim not in (2, 3):
        raise FewcellError(f"The image '{layer.name}' has {layer.ndim} dimensions; use a 2D image or a Z×Y×X stack.")
    data = layer_data(layer)
    return [np.asarray(data)] if layer.ndim == 2 else [np.asarray(data[z]) for z in range(data.shape[0])]


def as_planes(arr, stack: bool) -> np.ndarray:
    return np.asarray(arr) if stack else np.asarray(arr)[None]


def require_rectangles(shapes) -> None:
    """One sentence for a box layer holding another shape than a rectangle (an ellipse, a line, a polygon, a path):
    it would be read as its bounding box, which the user did not draw."""
    kinds = list(getattr(shapes, "shape_type", []))
    other = next((i for i, kind in enumerate(kinds) if kind != "rectangle"), None)
    if other is not None:
        raise FewcellError(f"Shape {other + 1} of the layer '{shapes.name}' is a {kinds[other]}, not a rectangle; "
                           "draw boxes with the rectangle tool (or the Add box button), or delete that shape.")


def rect_of(shapes, verts, image, point) -> tuple[int | None, tuple[int, int, int, int]]:
    """(plane index or None, (y, x, h, w)) in ``image``'s data of one shape (its bounding box)."""
    world = np.array([np.asarray(shapes.data_to_world(v), float) for v in np.asarray(verts, float)])
    n, k = image.ndim, min(image.ndim, world.shape[1])
    full = np.tile(np.array(point, float)[-n:], (len(world), 1))
    full[:, -k:] = world[:, -k:]
    data = np.array([np.asarray(image.world_to_data(w), float) for w in full])
    (y0, x0), (y1, x1) = np.round(data[:, -2:].min(0)), np.round(data[:, -2:].max(0))
    plane = int(round(data[0, 0])) if shapes.ndim >= 3 and n >= 3 else None
    return plane, (int(y0), int(x0), int(y1 - y0), int(x1 - x0))


def boxes_by_plane(shapes, image, point) -> dict[int, list[tuple[int, int, int, int]]] | None:
    """{plane: [(y, x, h, w)]} of every rectangle of a 3D shapes layer over a Z×Y×X (or T×Y×X) image, in drawing
    order; None when the shapes (or the image) are 2D: the rectangles then lie on whatever plane is shown."""
    if shapes.ndim < 3 or image.ndim - (3 if getattr(image, "rgb", False) else 2) != 1:
        return None
    require_rectangles(shapes)
    n = layer_data(image).shape[0]
    out: dict[int, list] = {}
    for verts in shapes.data:
        plane, box = rect_of(shapes, verts, image, point)
        if plane is not None and 0 <= plane < n:
            out.setdefault(plane, []).append(box)
    return out or None


def planes_prompt(groups: dict, prompt_image, labels, point):
    """(plane, labels, boxes) of the main plane, the (plane, labels, boxes) of the others, and each box's plane."""
    data, lab = np.asarray(layer_data(prompt_image)), layer_data(labels)
    if lab.ndim != 3 or lab.shape[0] != data.shape[0]:
        raise FewcellError(f"Boxes on several planes need prompt labels painted on those planes: a Z×Y×X labels "
                           f"layer of {data.shape[0]} planes, not '{labels.name}'.")
    shown = plane_at(prompt_image, point)[1][0]
    main = shown if shown in groups else min(groups)
    others = [z for z in sorted(groups) if z != main]
    more = [(data[z], np.asarray(lab[z]), groups[z]) for z in others]
    planes = [main] * len(groups[main]) + [z for z in others for _ in groups[z]]
    return data[main], np.asarray(lab[main]), groups[main], more, planes


def camera_of(viewer):
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 (viewer.camera is deprecated there)
    return scene.camera if scene is not None else viewer.camera


def box_in_view(viewer, image, size: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) in ``image``'s data of a box of side ``size`` (at most the image) centred on the view."""
    H, W = shape2d(image)
    h, w = min(size, H), min(size, W)
    cy, cx = from_world(image, np.asarray(camera_of(viewer).center, float)[-2:], viewer.dims.point)[-2:]
    return int(np.clip(round(cy - h / 2), 0, H - h)), int(np.clip(round(cx - w / 2), 0, W - w)), h, w


def box_corners(shapes, image, box, point) -> np.ndarray:
    """The four corners, in ``shapes``' data, of the box (y, x, h, w) of ``image``'s plane shown at ``point``."""
    y, x, h, w = box
    corners = [(y, x), (y, x + w), (y + h, x + w), (y + h, x)]
    return np.array([from_world(shapes, to_world(image, c, point), point) for c in corners])
