"""Workflow 1 as one request and one job (issue 23, item 1): segment_job gives what the Segmenter's own steps give,
for images, stacks and instances; a colour prompt with gray images is read as gray and said so; bad requests are one
sentence before any work."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fewcell.engine import FewcellError, PromptParams, Segmenter, instance_labels, run
from napari_fewcell.engine.prompt import SegmentRequest, prompt_job, segment_job

from .conftest import blobs

BOX = (20, 20, 64, 64)


@pytest.fixture(scope="module")
def seg():
    return Segmenter(PromptParams(device="cpu", adapt="fuse"))


@pytest.fixture(scope="module")
def images():
    (img, mask), (other, _) = blobs((128, 144), seed=3), blobs((128, 144), seed=4)
    return img, mask, other


def test_the_job_is_the_segmenters_steps(seg, images):
    img, mask, other = images
    prompt = seg.prepare_prompt(img, mask, BOX)
    expected = [seg.segment(x, prompt) for x in (img, other)]
    result = run(segment_job(SegmentRequest(img, mask, [BOX], [img, other], ["a", "b"], seg.params), seg))
    for got, want in zip(result.labels, expected):
        np.testing.assert_array_equal(got, want)
    assert result.prompt.path == prompt.path == "fuse" and result.colour is None
    assert result.provenance["boxes"] == [list(BOX)] and result.provenance["instances"] is None


def test_stack_and_instances(seg, images):
    img, mask, other = images
    stack = np.stack([img, other])
    request = SegmentRequest(img, mask, [BOX], [stack], params=seg.params, stack=True, instances="components")
    labels = run(segment_job(request, seg)).labels[0]
    prompt = seg.prepare_prompt(img, mask, BOX)
    want = instance_labels(run(seg.segment_stack_iter(stack, prompt)), "components")
    np.testing.assert_array_equal(labels, want)
    assert labels.shape == stack.shape and labels.max() > 1


def test_a_colour_prompt_with_gray_images_is_read_as_gray(seg, images):
    img, mask, other = images
    colour = np.repeat(img[..., None], 3, axis=2)
    colour[..., 0] //= 2  # not all channels equal: a colour image
    seg_, prompt, sentence = run(prompt_job(SegmentRequest(colour, mask, [BOX], [other], ["gray.tif"], seg.params),
                                            seg))
    assert seg_.params.luminance and not seg.params.luminance and seg_.model is seg.model
    assert "gray.tif" in sentence and "read as gray" in sentence
    assert prompt.check  # adapted: the self-check ran


@pytest.mark.parametrize("change, sentence", [
    ({"instances": "blobs"}, "Unknown instance method 'blobs': choose components or watershed."),
    ({"names": ["a", "b"]}, "The request names 2 images but holds 1; give one name per image."),
    ({"params": PromptParams(adapt="fast")}, "Unknown adaptation 'fast'"),
])
def test_a_bad_request_is_one_sentence_before_any_work(images, change, sentence):
    img, mask, _ = images
    request = SegmentRequest(img, mask, [BOX], [img], **change)
    job = segment_job(request)
    with pytest.raises(FewcellError, match=sentence):
        next(job)
