"""Bad input to the Python API found by an audit (2026-12-08): one FewcellError sentence each, never another
exception, a hang, or a silently wrong result."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine import FewcellError, PromptParams, Segmenter, segment
from napari_fewcell.engine import suggest as sg
from napari_fewcell.engine.core.instances import instance_labels
from napari_fewcell.engine.core.lazy import LazyImage
from napari_fewcell.engine.core.progress import run
from napari_fewcell.engine.fewshot import PerceptronParams, fit
from napari_fewcell.engine.partial import PseudoParams, TrainParams
from napari_fewcell.engine.partial.stage2 import training_set
from napari_fewcell.engine.prompt import apply_corrections

from .conftest import blobs

BOX = (16, 16, 64, 64)


@pytest.fixture(scope="module")
def seg():
    return Segmenter(PromptParams(device="cpu", adapt="none"))


@pytest.mark.parametrize("cls, values, words", [
    (PromptParams, {"tau": "abc"}, "'tau' must be a finite number"),
    (PromptParams, {"prototypes": 2.5}, "'prototypes' must be a whole number"),
    (PromptParams, {"trees": True}, "'trees' must be a whole number"),
    (PromptParams, {"margin": -5}, "context margin must be from 0"),
    (PromptParams, {"tau": 1e30}, "temperature"),
    (PromptParams, {"stroke_weight": 10**30}, "weight must be a number from 1"),
    (PseudoParams, {"context": -10}, "context must be 0 or more"),
    (PseudoParams, {"lr": float("inf")}, "lr. must be a finite number"),
    (TrainParams, {"dice_weight": float("nan")}, "'dice_weight' must be a finite number"),
    (TrainParams, {"lr": 1e12}, "learning rate"),
    (TrainParams, {"base": 0}, "U-Net needs"),
    (TrainParams, {"depth": 9}, "U-Net needs"),
    (PerceptronParams, {"lam": "x"}, "'lam' must be a finite number"),
    (sg.SuggestParams, {"top": float("nan")}, "'top' must be a whole number"),
])
def test_parameters_of_another_type_or_range(cls, values, words):
    with pytest.raises(FewcellError, match=words):
        cls(**values).check()


def test_instances_of_non_finite_input_are_refused_not_hung():
    _, mask = blobs((32, 32))
    with pytest.raises(FewcellError, match="split depth"):
        instance_labels(mask, "watershed", float("nan"))
    with pytest.raises(FewcellError, match="NaN or infinite"):
        instance_labels(mask, "confidence", confidence=np.full(mask.shape, np.inf))


def test_class_values_above_65535_are_kept(seg):
    img, mask = blobs((96, 96))
    prompt = seg.prepare_prompt(img, mask.astype(np.int64) * 70000, BOX)
    out = seg.segment(img, prompt)
    assert set(np.unique(out)) == {0, 70000} and out.dtype == np.uint32
    fixed = apply_corrections(np.zeros((4, 4), np.uint8), np.where(np.eye(4, dtype=bool), 300, -1))
    assert fixed.max() == 300
    with pytest.raises(FewcellError, match="whole numbers"):
        apply_corrections(np.zeros((4, 4), np.uint8), np.full((4, 4), 0.5))
    with pytest.raises(FewcellError, match="corrections are 2×4"):
        apply_corrections(np.zeros((4, 4), np.uint8), np.zeros((2, 4)))


def test_values_beyond_float32_and_a_wrong_output_array(seg):
    img, mask = blobs((96, 96))
    with pytest.raises(FewcellError, match="beyond ±3.4e38"):
        seg.prepare_prompt(img.astype(np.float64) * 1e300, mask, BOX)
    prompt = seg.prepare_prompt(img, mask, BOX)
    with pytest.raises(FewcellError, match="output array must be 96×96"):
        run(seg.segment_lazy_iter(LazyImage(img), prompt, np.zeros((10, 10), np.uint8)))


def test_training_labels_and_support_boxes_are_checked():
    img, mask = blobs((64, 64))
    with pytest.raises(FewcellError, match="negative values"):
        training_set([img], [-mask.astype(int)])
    with pytest.raises(FewcellError, match="known-pixels mask"):
        training_set([img], [mask], known=[np.ones((5, 5), bool)])
    with pytest.raises(FewcellError, match="2 support images but 1 lists of boxes"):
        fit([img, img], [mask, mask], [[(0, 0, 32, 32)]])


def test_a_gray_perceptron_does_not_score_colour_tiles_and_tiles_must_be_in_the_images():
    img, mask = blobs((128, 128))
    model = fit([img], [mask], params=PerceptronParams(device="cpu"))
    rgb = np.repeat(img[..., None], 3, -1).copy()
    rgb[..., 0] //= 2
    with pytest.raises(FewcellError, match="colour"):
        run(sg.suggest_iter([rgb], sg.scorer_for(model), sg.SuggestParams(score="consistency", tile=64, top=1)))
    session = sg.Session([img], ["cells"], sg.SessionParams(suggest=sg.SuggestParams(tile=64)))
    with pytest.raises(FewcellError, match="no image -1"):
        session.accept(-1, (0, 0, 64, 64), mask)
    with pytest.raises(FewcellError, match="not inside"):
        session.skip(0, (100, 100, 64, 64))


def test_a_prompt_and_parameters_of_the_right_kind(seg):
    img, _ = blobs((96, 96))
    with pytest.raises(FewcellError, match="prepare the prompt first"):
        seg.segment(img, None)
    with pytest.raises(FewcellError, match="must be a PromptParams"):
        Segmenter({"tau": 1})
    with pytest.raises(FewcellError, match="must be a SuggestParams"):
        sg.SuggestRequest([img], params=None).check()


def test_sentences_that_say_what_is_wrong():
    from napari_fewcell.engine.core.annotation import label_values
    from napari_fewcell.engine.fewshot import support

    img, mask = blobs((64, 64))
    with pytest.raises(FewcellError, match="has 2 channels"):
        segment(np.stack([img, img], -1), img, mask, BOX, PromptParams(device="cpu", adapt="none"))
    with pytest.raises(FewcellError, match="hold values up to 1e"):
        label_values(np.full((4, 4), 1e20), "labels")
    with pytest.raises(FewcellError, match="support image 1 has no labels"):
        support(img, None, name="support image 1")
    with pytest.raises(FewcellError, match="No image was given"):
        run(sg.suggest_iter([], None, sg.SuggestParams(score="random")))


def test_containers_of_the_wrong_kind():
    from napari_fewcell.engine.partial import pseudolabel

    img, mask = blobs((64, 64))
    with pytest.raises(FewcellError, match="A box is four numbers"):
        segment(img, img, mask, None, PromptParams(device="cpu", adapt="none"))
    with pytest.raises(FewcellError, match="support images must be a list"):
        fit(None, None)
    with pytest.raises(FewcellError, match="images must be a list"):
        pseudolabel(img, [mask], [(0, 0, 32, 32)])
    with pytest.raises(FewcellError, match="training images must be a list"):
        training_set(None, None)
    with pytest.raises(FewcellError, match="2 images but 1 names"):
        sg.Session([img, img], ["a"])


def test_excluded_tiles_and_correction_boxes_are_checked():
    from napari_fewcell.engine.prompt import corrections_from_edit

    img, mask = blobs((128, 128))
    params = sg.SuggestParams(score="random", tile=64, top=1)
    for exclude, words in [({0: [(1, 2, 3)]}, "A box is four numbers"), ({5: []}, "numbered 0 to 0"),
                           ("x", "exclude maps an image index")]:
        with pytest.raises(FewcellError, match=words):
            run(sg.suggest_iter([img], None, params, exclude))
    assert run(sg.suggest_iter([img], None, params, {0: [(0, 0, 64.0, 64)]}))
    with pytest.raises(FewcellError, match="A box is four numbers"):
        corrections_from_edit(mask, mask, [(1, 2, 3)])
