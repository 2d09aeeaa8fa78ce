#!/usr/bin/env python
"""The prompt path with the networks' inference in bfloat16: bench_generalise.py's run, unchanged but for every
forward pass made without gradients (the embeddings of the prompt, of the self-check's regions and of the images;
stage 2's predictions) running under bfloat16 autocast, its output cast back to float32 for the attention, the
forests and the check. Compare with bench_generalise.py run with the same arguments, alone, one after the other.

    python studies/probe_bf16_inference.py --data ../shared/data --folds isbi2012_membrane ... --out results/X.md

(every argument is bench_generalise.py's). A probe: the engine does not do this; on a CPU without native bfloat16
it would be slower, not faster.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the benchmark it wraps


def bf16_inference() -> None:
    """Patch ``EmbedNet.any_size`` (every network pass of the engine goes through it) as the module says."""
    import torch

    from napari_fewcell.engine.nets import unet

    engine = unet.EmbedNet.any_size

    def any_size(self, x, fn=None, mode="auto"):
        if torch.is_grad_enabled():
            return engine(self, x, fn, mode)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return engine(self, x, fn, mode).float()

    unet.EmbedNet.any_size = any_size


if __name__ == "__main__":
    bf16_inference()
    import bench_generalise

    bench_generalise.main()
