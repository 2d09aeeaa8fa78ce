"""The widgets' settings forms are made from the parameter dataclasses (issue 23, item 1): every field a form shows
starts at the dataclass's default, offers the field's choices and help, and reads back as the dataclass."""
from __future__ import annotations

import dataclasses

import pytest

from napari_fewcell._qt.forms import ParamsForm
from napari_fewcell.engine.core.options import choices_of
from napari_fewcell.engine.fewshot.params import PerceptronParams
from napari_fewcell.engine.partial.params import PseudoParams, TrainParams
from napari_fewcell.engine.prompt.params import PromptParams
from napari_fewcell.engine.suggest.params import SessionParams, SuggestParams

CLASSES = [PromptParams, PseudoParams, TrainParams, PerceptronParams, SuggestParams, SessionParams]


def shown(cls) -> list[str]:
    """The fields a form shows: those with a label (engine/core/options.option)."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("label")]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_form_of_every_shown_field_reads_back_the_defaults(cls, qtbot):
    names = shown(cls)
    assert names, f"{cls.__name__} shows no field"
    form = ParamsForm([(cls, name) for name in names])
    default = cls()
    assert cls(**form.values(cls)) == default
    for f in dataclasses.fields(cls):
        if f.name in names and f.metadata.get("choices"):
            assert list(form[f.name].choices) == [value for value, _ in choices_of(f)]
        if f.name in names:
            assert form[f.name].tooltip, f"{cls.__name__}.{f.name} has no help"


def test_a_changed_value_reaches_the_dataclass(qtbot):
    form = ParamsForm([(SuggestParams, "tile"), (SuggestParams, "score"), (SessionParams, "model"),
                       (SessionParams, "device")])
    form.tile.value, form.score.value, form.model.value, form.device.value = 64, "entropy", "prompt", "cpu"
    suggest, session = SuggestParams(**form.values(SuggestParams)), SessionParams(**form.values(SessionParams))
    assert (suggest.tile, suggest.score, suggest.device) == (64, "entropy", "cpu")
    assert (session.model, session.device) == ("prompt", "cpu")
    assert form.model.native.currentText() == "prompt segmenter (workflow 1)"  # the words, not the value, are shown


def test_a_layer_picker_keeps_its_layers_and_choice_when_shown_again(make_napari_viewer, qtbot):
    """magicgui resets a combo box's choices whenever it is shown (a dock hidden and shown again): the picker's
    choices are the viewer's layers then too, and its choice stays; refilling says nothing, a user's pick does."""
    import numpy as np

    from napari_fewcell._qt.layers import LayerPicker

    viewer = make_napari_viewer()
    a = viewer.add_labels(np.zeros((8, 8), np.uint8), name="a labels")
    b = viewer.add_labels(np.zeros((8, 8), np.uint8), name="b labels")
    picker, said = LayerPicker("(none)"), []
    picker.changed.connect(said.append)
    picker.refill([a, b], [b])
    assert picker.layer is b and picker.shown == ["(none)", "a labels", "b labels"] and not said
    qtbot.addWidget(picker.native)
    for _ in range(2):
        picker.native.show()
        picker.native.hide()
    assert picker.layer is b and picker.shown == ["(none)", "a labels", "b labels"]
    picker.pick("a labels")
    assert picker.layer is a and said == [a]
    picker.refill([b], [])  # 'a labels' is gone: the placeholder, as nothing is preferred
    assert picker.layer is None and picker.text == "(none)" and said == [a]


def test_the_prompt_widgets_temperature_and_weights_fields(make_napari_viewer, tmp_path):
    """τ at its minimum reads 'default' and means the weights' own; an empty weights field means the shipped ones;
    both are magicgui fields of the settings form and reach PromptParams."""
    from napari_fewcell._qt.prompt_widget import PromptSegmentationWidget

    widget = PromptSegmentationWidget(make_napari_viewer())
    form = widget.settings
    assert form.tau.native.text() == "default" and form.weights.value is None
    assert widget.params() == PromptParams()
    weights = tmp_path / "mine.pt"
    form.tau.value, form.weights.value, form.adapt.value = 0.07, str(weights), "none"
    assert widget.params() == PromptParams(tau=0.07, weights=str(weights), adapt="none")
