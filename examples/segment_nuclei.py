"""Prompt segmentation from Python: the sample nuclei image, one painted 64×64 box, the whole image segmented.

    python examples/segment_nuclei.py [OUT_DIR]      # writes OUT_DIR/nuclei_labels.tif (default: example_out/)
"""
import sys
from pathlib import Path

import tifffile

from napari_fewcell import PromptParams, Segmenter, estimate_text, segment

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
out = Path(sys.argv[1] if len(sys.argv) > 1 else "example_out")

image = tifffile.imread(SAMPLE / "nuclei.tif")
labels = tifffile.imread(SAMPLE / "nuclei_prompt_labels.tif")  # painted inside the box only
box = (256, 416, 64, 64)  # top, left, height, width

# one call
result = segment(image, image, labels, box=box)

# or keep the network and the prompt, and segment many images with it
seg = Segmenter(PromptParams())
prompt = seg.prepare_prompt(image, labels, box=box)
for other in [image]:
    result = seg.segment(other, prompt)  # numpy, 0 = background, 1 = nucleus
print(estimate_text(prompt.path, prompt.check))

out.mkdir(parents=True, exist_ok=True)
tifffile.imwrite(out / "nuclei_labels.tif", result, compression="zlib")
print(f"{int((result == 1).mean() * 100)} % of the pixels are nuclei; labels in {out / 'nuclei_labels.tif'}")
