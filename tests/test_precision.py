"""Training precision: bfloat16 autocast where the device computes it natively, float32 elsewhere or when asked."""
from __future__ import annotations

import pytest
import torch

from napari_fewcell.engine import FewcellError, TrainParams, run, train_iter
from napari_fewcell.engine.core import device as devmod

from .conftest import blobs, dice_mean


def forward_dtype(precision: str) -> torch.dtype:
    conv = torch.nn.Conv2d(1, 2, 3)
    with devmod.training_autocast(torch.device("cpu"), precision):
        return conv(torch.ones(1, 1, 5, 5)).dtype


def test_autocast_follows_the_precision_and_the_hardware(monkeypatch):
    assert forward_dtype("float32") == torch.float32
    assert forward_dtype("bfloat16") == torch.bfloat16
    monkeypatch.setattr(devmod, "native_bf16", lambda device: False)
    assert forward_dtype("auto") == torch.float32  # emulated bfloat16 would be slower: stay in float32
    monkeypatch.setattr(devmod, "native_bf16", lambda device: True)
    assert forward_dtype("auto") == torch.bfloat16
    assert devmod.resolve_precision(torch.device("cpu"), "auto") == "bfloat16"
    assert devmod.resolve_precision(torch.device("cpu"), "float32") == "float32"
    with pytest.raises(FewcellError, match="Unknown precision 'half'"):
        forward_dtype("half")


def test_native_bf16_is_false_where_torch_cannot_tell(monkeypatch):
    assert devmod.native_bf16(torch.device("meta")) is False
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: asked.append(kw) or False)
    assert devmod.native_bf16(torch.device("cuda")) is False and asked == [{"including_emulation": False}]
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert devmod.native_bf16(torch.device("cpu")) is False


def test_stage2_learns_in_bfloat16_and_predicts_in_float32():
    pairs = [blobs((96, 96), seed=10 + i, n=14) for i in range(3)]
    p = TrainParams(steps=60, batch=4, crop=64, base=8, init="scratch", device="cpu", precision="bfloat16",
                    rounds=1)
    model = run(train_iter([im for im, _ in pairs[:2]], [m for _, m in pairs[:2]], params=p))
    assert model.card["params"]["precision"] == model.card["precision"] == "bfloat16"
    assert all(v.dtype == torch.float32 for v in model.net.state_dict().values() if v.is_floating_point())
    img, truth = pairs[2]
    assert dice_mean(model.predict(img), truth) > 0.8


def test_a_bad_precision_gets_one_sentence():
    with pytest.raises(FewcellError, match="Unknown precision 'fp8': choose one of auto, float32, bfloat16"):
        TrainParams(precision="fp8").check()
