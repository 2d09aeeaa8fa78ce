"""Partial labels from Python: four crops of the sample nuclei image, a 64×64 box painted in two of them, pseudo-labels
for all four, then a network of your own trained on them, saved and applied to a new image.

    python examples/partial_labels.py [OUT_DIR] [--quick]   # --quick: tiny budgets, a smoke test (seconds)
"""
import sys
from pathlib import Path

import numpy as np
import tifffile

from napari_fewcell import PseudoParams, SegModel, TrainParams, pseudolabel, run, train_iter

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
quick = "--quick" in sys.argv
args = [a for a in sys.argv[1:] if a != "--quick"]
out = Path(args[0] if args else "example_out")

full = tifffile.imread(SAMPLE / "nuclei.tif")
truth = tifffile.imread(SAMPLE / "nuclei_labels.tif")  # the sample's full labels stand in for a user's painting
crops = [(0, 0), (0, 256), (256, 0), (256, 256)]
images = [full[y : y + 256, x : x + 256] for y, x in crops]
box = (96, 96, 64, 64)  # the same box in every annotated image; outside it nothing is known
labels = [truth[y : y + 256, x : x + 256] if k < 2 else None for k, (y, x) in enumerate(crops)]

stage1 = PseudoParams(epochs=1, steps_per_epoch=2) if quick else PseudoParams()
pseudo = pseudolabel(images, labels, boxes=[box], params=stage1)

stage2 = TrainParams(steps=10) if quick else TrainParams()  # 2 rounds of 500 steps from the embedding weights
painted = [np.zeros((256, 256), bool) for _ in images]  # the pixels a self-training round keeps: your annotation
for k in (0, 1):
    painted[k][box[0] : box[0] + box[2], box[1] : box[1] + box[3]] = True
model = run(train_iter(images, pseudo, params=stage2, keep=painted))
out.mkdir(parents=True, exist_ok=True)
model.save(out / "nuclei_net.pt")  # + nuclei_net.json, its card
new = SegModel.load(out / "nuclei_net.pt").predict(full)
print(f"pseudo-labels for {len(pseudo)} images; the network labels {int(np.mean(new == 1) * 100)} % of the "
      f"full image as nuclei; model in {out / 'nuclei_net.pt'}")
