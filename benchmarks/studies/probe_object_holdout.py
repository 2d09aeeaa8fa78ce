#!/usr/bin/env python
"""Would the self-check judge attention better if it held out whole objects instead of quadrants? (issue 20, item 4:
the in-domain DSB fluorescence box 041 at y 355, where auto takes the fused path: attention's held-out quadrants
score 0.65, the fused path's 0.88; on the test images attention got 94.5, the fused path 86.0.) On bench_prompt's
12 seeded boxes of a set (the shipped weights), the self-check's estimates of attention and the fused path with
the held-out groups as the engine makes them (quadrants) and as whole objects: each 8-connected object of the box's
labels with the background pixels nearest it, the objects in 4 groups (rank of the centroid mod 4; quadrants when
the box holds fewer than 2 objects).

    python studies/probe_object_holdout.py dsb2018_fluo 0.05 0.60 ../shared/data > results/probe_object_holdout.txt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py and bench_prompt

import numpy as np
from bench_prompt import BOX, pick_box
from common import Dataset, set_threads
from scipy import ndimage as ndi

from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.prompt import PromptParams, Segmenter
from napari_fewcell.engine.prompt.adapt import choose, self_check
from napari_fewcell.engine.prompt.annotated import BoxData


def object_groups(lab: np.ndarray) -> np.ndarray | None:
    """(h·w,) held-out group of each pixel of a box's labels: its nearest object's (None: fewer than 2 objects)."""
    comp, n = ndi.label(lab > 0, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    idx = ndi.distance_transform_edt(comp == 0, return_distances=False, return_indices=True)
    nearest = comp[idx[0], idx[1]]
    cents = ndi.center_of_mass(lab > 0, comp, range(1, n + 1))
    order = np.lexsort(([c[1] for c in cents], [c[0] for c in cents]))
    g = np.empty(n + 1, int)
    g[1 + order] = np.arange(n) % min(4, n)
    return g[nearest].reshape(-1)


def text(c: dict) -> str:
    return " / ".join(f"{c[k]:.3f}" for k in ("none", "fuse")) if c else "no estimate"


def main() -> None:
    set_threads(2)
    name, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    ds = Dataset(sys.argv[4] if len(sys.argv) > 4 else "../shared/data", name)
    seg = Segmenter(PromptParams(device="cpu"))  # the shipped weights
    print(f"{name}: 12 boxes of bench_prompt (foreground {lo:g}-{hi:g}); estimates attention / fused path")
    p = seg.params
    for s in range(12):
        src, y, x = pick_box(s, ds, lo, hi)
        prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
        lab = np.asarray(ds.labels[src])[y:y + BOX, x:x + BOX]
        yy = np.unique(prompt.labels, return_inverse=True)[1].reshape(-1)
        out = []
        for mode in ("quad", "obj"):
            box = BoxData(prompt.embeddings, yy, prompt.sources, seg.tau, p.check_buffer, p.stroke_use, p.check_strokes)
            if mode == "obj":
                g = object_groups(lab)
                if g is not None:
                    box.quad = g
                    box.held_groups = np.unique(box.quad[box.scored])
                    box.fair = box.scored & np.isin(box.quad, [q for q in box.held_groups if box.learnable(q)])
            check, _ = run(self_check(seg.model, box, p, ('none', 'fuse')))
            out.append(check)
        n_obj = ndi.label(lab > 0, structure=np.ones((3, 3), bool))[1]
        print(f"box {s} ({src}, y {y}) objects {n_obj}: quadrants {text(out[0])} -> {choose(out[0])}; "
              f"objects {text(out[1])} -> {choose(out[1])}", flush=True)


if __name__ == "__main__":
    main()
