"""Instances by the "confidence" method (watershed of distance × confidence), its errors, stacks, and uint32 ids."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.core.instances import METHODS, instance_labels


def touching_discs():
    """Two discs of radius 10 whose centres are 4 px apart (x = 28 and 32: one round blob to the smoothed
    distance), a 1-px object, and a confidence that dips to 0.3 on the 3-px band where the discs meet (x = 29..31)."""
    yy, xx = np.mgrid[:40, :60]
    lab = np.zeros((40, 60), np.uint8)
    lab[((yy - 20) ** 2 + (xx - 28) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 32) ** 2 <= 100)] = 1
    lab[2, 55] = 1
    conf = np.where(lab > 0, 0.95, 0.9).astype(np.float16)
    conf[(lab > 0) & (np.abs(xx - 30) <= 1)] = 0.3
    return lab, conf


def test_confidence_dip_splits_touching_discs():
    lab, conf = touching_discs()
    assert "confidence" in METHODS
    assert instance_labels(lab).max() == 2  # the discs are one component, the dot another
    assert instance_labels(lab, "confidence", confidence=np.ones(lab.shape)).max() == 2  # no dip: no split
    inst = instance_labels(lab, "confidence", confidence=conf)
    assert inst.dtype == np.uint16 and inst.max() == 3
    assert np.array_equal(inst > 0, lab > 0)  # every pixel of the mask keeps a label
    left, right, dot = inst[20, 20], inst[20, 40], inst[2, 55]
    assert len({left, right, dot}) == 3 and 0 not in (left, right, dot)
    disc_ids = np.unique(inst[20, 18:43])
    assert set(disc_ids) == {left, right}
    assert set(np.unique(inst[:, :29][lab[:, :29] > 0])) == {left}  # the cut lies in the dip
    assert set(np.unique(inst[:, 32:50][lab[:, 32:50] > 0])) == {right}
    assert abs(int((inst == left).sum()) - int((inst == right).sum())) <= 40  # two halves of about 200 px


def test_confidence_missing_or_mismatched():
    lab, conf = touching_discs()
    with pytest.raises(FewcellError, match="needs the segmentation's confidence map"):
        instance_labels(lab, "confidence")
    with pytest.raises(FewcellError, match=r"shape \(40, 59\) is not the labels' \(40, 60\)"):
        instance_labels(lab, "confidence", confidence=conf[:, :59])
    with pytest.raises(FewcellError, match="shape"):
        instance_labels(np.stack([lab, lab]), "confidence", confidence=conf)


def test_confidence_stack_numbered_across_planes():
    lab, conf = touching_discs()
    flat = np.ones_like(conf)
    stack = instance_labels(np.stack([lab, lab, np.zeros_like(lab)]), "confidence",
                            confidence=np.stack([conf, flat, flat]))
    assert stack.shape == (3, 40, 60) and stack.max() == 5
    assert set(np.unique(stack[0])) == {0, 1, 2, 3}  # split: two discs and the dot
    assert set(np.unique(stack[1])) == {0, 4, 5}  # no dip in this plane's confidence: one blob and the dot
    assert not stack[2].any()


@pytest.mark.parametrize("method", ["components", "confidence"])
def test_more_than_65535_objects_are_uint32(method):
    lab = np.zeros((600, 600), np.uint8)
    lab[::2, ::2] = 1  # 300 × 300 = 90,000 isolated pixels
    conf = np.full(lab.shape, 0.8, np.float32) if method == "confidence" else None
    inst = instance_labels(lab, method, confidence=conf)
    assert inst.dtype == np.uint32 and inst.max() == 90_000
    ids = inst[::2, ::2]
    assert len(np.unique(ids)) == 90_000 and ids.min() == 1  # one unique id per object, none lost
    assert not inst[1::2].any() and not inst[:, 1::2].any()
