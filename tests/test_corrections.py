"""Several prompt boxes and correction strokes (issue 14, item 1): the engine side."""
import numpy as np
import pytest
import torch

from napari_fewcell.engine import FewcellError, PromptParams, Segmenter
from napari_fewcell.engine.prompt import apply_corrections, corrections_from_edit, merge_corrections
from napari_fewcell.engine.prompt.adapt import choose
from napari_fewcell.engine.prompt.annotated import BoxData, PromptSource, pixel_groups
from napari_fewcell.engine.prompt.corrections import PART_PIXELS, correction_parts

from .conftest import blobs, dice_mean


@pytest.fixture(scope="module")
def seg():
    return Segmenter(PromptParams(device="cpu", adapt="none"))


def squares_and_discs(seed=0):
    """Bright discs and dark squares on a mid-grey background, both class 1: a box on the left shows discs and
    background, never a square."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.4, 0.02, (160, 256)).astype(np.float32)
    truth = np.zeros(img.shape, np.uint8)
    yy, xx = np.mgrid[:160, :256]
    for cy, cx in [(30, 30), (30, 90), (90, 40), (130, 100), (100, 100)]:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 81
        img[disc], truth[disc] = 0.9, 1
    for cy, cx in [(30, 180), (90, 160), (90, 220), (135, 190), (40, 235)]:
        img[cy - 8 : cy + 8, cx - 8 : cx + 8], truth[cy - 8 : cy + 8, cx - 8 : cx + 8] = 0.02, 1
    return img, truth


def test_corrections_from_an_edit_skip_boxes_and_map_instances():
    produced = np.zeros((20, 20), np.uint8)
    edited = produced.copy()
    edited[2:4, 2:4] = 1  # painted
    edited[10:12, 10:12] = 1  # painted inside the box below: ignored
    corr = corrections_from_edit(produced, edited, boxes=[(8, 8, 6, 6)])
    assert (corr[2:4, 2:4] == 1).all() and (corr >= 0).sum() == 4
    inst = np.zeros((20, 20), np.uint16)
    inst[5:7, 5:7] = 7
    edited = inst.copy()
    edited[5:7, 5:7] = 0  # a false object erased
    edited[15:17, 15:17] = 3  # a missed object painted with an instance id
    corr = corrections_from_edit(inst, edited, foreground=2)
    assert (corr[5:7, 5:7] == 0).all() and (corr[15:17, 15:17] == 2).all() and (corr >= 0).sum() == 8
    with pytest.raises(FewcellError, match="size"):
        corrections_from_edit(produced, np.zeros((20, 21), np.uint8))


def test_merge_and_apply_corrections_keep_the_users_pixels():
    first = np.full((6, 6), -1, np.int32)
    first[0, 0] = 1
    second = np.full((6, 6), -1, np.int32)
    second[0, 0], second[5, 5] = 0, 2
    merged = merge_corrections(first, second)
    assert merged[0, 0] == 0 and merged[5, 5] == 2 and (merged >= 0).sum() == 2
    out = apply_corrections(np.ones((6, 6), np.uint8), merged)
    assert out[0, 0] == 0 and out[5, 5] == 2 and out[1, 1] == 1 and out.dtype == np.uint8


def test_strokes_become_parts_close_ones_joined_big_ones_thinned():
    corr = np.full((700, 700), -1, np.int32)
    corr[10, 10:20] = 1
    corr[14, 10:20] = 0  # 4 px from the first stroke: the same part
    corr[100, 100:110] = 1  # far: a part of its own
    corr[52:56, 52:56] = 1  # inside the box below: ignored and counted
    parts, inside, outside = correction_parts(corr, [(50, 50, 10, 10)])
    assert inside == 16 and outside == 30 and len(parts) == 2
    (rect, mask, values), (rect2, mask2, values2) = parts
    assert rect == (10, 10, 5, 10) and mask.sum() == 20 and sorted(np.unique(values)) == [0, 1]
    assert rect2 == (100, 100, 1, 10) and (values2 == 1).all()
    fill = np.zeros((700, 700), np.int32)  # a flood fill of the whole image as background
    parts, _, outside = correction_parts(fill, [])
    assert outside == 700 * 700
    assert len(parts) == 4  # cut into rectangles of at most 512 px
    assert all(m.sum() <= PART_PIXELS and r[2] <= 512 and r[3] <= 512 for r, m, _ in parts)


def test_several_boxes_count_overlaps_once_and_adapt_together(blob_image):
    img, mask = blob_image
    seg = Segmenter(PromptParams(device="cpu", adapt="fuse", trees=10))
    boxes = [(10, 10, 40, 40), (30, 30, 40, 40), (80, 70, 40, 40)]
    prompt = seg.prepare_prompt_boxes(img, mask, boxes)
    assert prompt.labels.size == 3 * 1600 - 400 and prompt.notes["overlap_pixels"] == 400
    assert prompt.boxes == boxes and [s.kind for s in prompt.sources] == ["box"] * 3
    out = seg.segment(img, prompt)
    assert prompt.path == "fuse" and set(prompt.check) == {"none", "fuse"}
    assert dice_mean(out, mask) > 0.8
    with pytest.raises(FewcellError, match="size of the prompt image"):
        seg.prepare_prompt_boxes(img, mask[10:50, 10:50], boxes[:2])


@pytest.mark.parametrize("adapt", ["none", "fuse"])
def test_same_boxes_in_any_order_give_the_same_labels(blob_image, adapt):
    """Issue 20, item 5: the boxes (overlapping ones too) and a correction, given in two orders → identical labels,
    the same self-check and the same provenance order."""
    img, mask = blob_image
    seg = Segmenter(PromptParams(device="cpu", adapt=adapt, trees=10))
    boxes = [(80, 70, 40, 40), (10, 10, 40, 40), (30, 30, 40, 40)]
    corr = np.full(mask.shape, -1)
    corr[150:153, 20:60] = 1
    a = seg.prepare_prompt_boxes(img, mask, boxes, corrections=corr)
    b = seg.prepare_prompt_boxes(img, mask, boxes[::-1], corrections=corr)
    assert a.boxes == b.boxes == sorted(boxes)
    la, lb = seg.segment(img, a), seg.segment(img, b)
    assert (la == lb).all() and a.check == b.check and a.path == b.path == adapt


def test_self_check_groups_hold_out_boxes_and_never_score_strokes():
    def src(kind, n=8, mask=None):
        return PromptSource(np.zeros((3, n, n), np.float32), (0, 0), (n, n), mask, kind)

    stroke = np.zeros((8, 8), bool)
    stroke[2, :5] = True
    one = pixel_groups([src("box"), src("stroke", mask=stroke)])
    assert sorted(np.unique(one[:64])) == [0, 1, 2, 3] and (one[64:] == 4).all()
    two = pixel_groups([src("box"), src("box"), src("stroke", mask=stroke)])
    assert (two[:64] == 0).all() and (two[64:128] == 1).all() and (two[128:] == 2).all()
    many = pixel_groups([src("box", 2) for _ in range(7)] + [src("stroke", mask=stroke)])
    assert list(many[:28:4]) == [0, 1, 2, 3, 4, 0, 1] and (many[28:] == 5).all()  # at most 5 held-out groups
    y = np.r_[np.zeros(100, int), np.ones(33, int)]
    box = BoxData(torch.zeros(133, 4), y, [src("box"), src("box"), src("stroke", mask=stroke)], 0.1, buffer=2)
    assert list(box.held_groups) == [0, 1] and box.scored.sum() == 128
    assert not box.train_mask(0)[:64].any() and box.train_mask(0)[64:].all()  # another box is not near


def test_one_box_a_correction_fixes_what_the_box_never_showed():
    """One stroke across one dark square ("this is class 1 too"): the fused path learns it, and the squares
    nobody painted follow; the discs and the background stay right."""
    seg = Segmenter(PromptParams(device="cpu", adapt="fuse", trees=20))
    img, truth = squares_and_discs()
    box = (10, 10, 64, 64)  # discs and background only
    before = seg.segment(img, seg.prepare_prompt_boxes(img, truth, [box]))
    others = np.zeros(img.shape, bool)
    for cy, cx in [(30, 180), (90, 220), (135, 190), (40, 235)]:  # the squares nobody painted
        others[cy - 8 : cy + 8, cx - 8 : cx + 8] = True
    assert (before[others] == 1).mean() < 0.2  # not what the box showed
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1  # one stroke across one square
    fixed = seg.prepare_prompt_boxes(img, truth, [box], corrections=corr)
    assert fixed.notes["strokes"] == 1 and fixed.notes["stroke_pixels"] == 64 == fixed.notes["stroke_keys"]
    assert [s.kind for s in fixed.sources] == ["box", "stroke"]
    after = seg.segment(img, fixed)
    # every square's inside follows; the forests read no coarse brightness (prompt/filters.SMOOTH_SIGMA_MAX), so a
    # square's outermost corner pixels, unlike anything the stroke across its middle showed, may not (with the
    # coarse maps 100 % followed; without them 88 %)
    inner = np.array([after[cy - 6 : cy + 6, cx - 6 : cx + 6] for cy, cx in [(30, 180), (90, 220), (135, 190),
                                                                              (40, 235)]])
    assert (inner == 1).all() and (after[others] == 1).mean() > 0.85
    assert dice_mean(after, truth) > dice_mean(before, truth) + 0.1 and dice_mean(after, truth) > 0.95


def test_a_correction_alone_may_bring_the_second_class(seg):
    img, mask = blobs((128, 128), seed=4)
    empty = (0, 0, 20, 20)
    assert not mask[:20, :20].any()
    with pytest.raises(FewcellError, match="class"):
        seg.prepare_prompt_boxes(img, mask, [empty])
    corr = np.where(mask > 0, 1, -1).astype(np.int32)
    prompt = seg.prepare_prompt_boxes(img, mask, [empty], corrections=corr)
    assert sorted(np.unique(prompt.labels)) == [0, 1]
    with pytest.raises(FewcellError, match="size of the image"):
        seg.prepare_prompt_boxes(img, mask, [empty], corrections=corr[:50])


@pytest.mark.parametrize("use, adapt", [("attention", "forest"), ("forest", "none")])
def test_what_a_stroke_teaches_is_chosen_by_stroke_use(use, adapt):
    """stroke_use="attention": the forests learn from the boxes only, so the filters-only forest ignores a stroke;
    "forest": the attention's keys are the boxes' pixels only, so attention alone ignores it. With "both" each
    path learns from the stroke."""
    img, truth = squares_and_discs()
    box = (10, 10, 64, 64)
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1  # one stroke across one dark square
    labels = {}
    for u in (use, "both"):
        seg = Segmenter(PromptParams(device="cpu", adapt=adapt, trees=20, stroke_use=u))
        before = seg.segment(img, seg.prepare_prompt_boxes(img, truth, [box]))
        labels[u] = seg.segment(img, seg.prepare_prompt_boxes(img, truth, [box], corrections=corr)), before
    after, before = labels[use]
    assert np.array_equal(after, before)
    after, before = labels["both"]
    assert (after != before).any()  # the same stroke moves the same path when both learn from it
    with pytest.raises(FewcellError, match="use of strokes"):
        PromptParams(stroke_use="neither").check()


@pytest.mark.parametrize("reach", ["local", "everywhere"])
def test_a_stroke_changes_the_result_near_it_or_everywhere(reach):
    """PromptParams.stroke_reach with the result the stroke was painted on (SegmentRequest.corrected): "local" fixes
    the square the stroke crosses and leaves the squares nobody painted as they were; "everywhere" fixes them too."""
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.prompt import SegmentRequest, segment_job

    img, truth = squares_and_discs()
    box = [(10, 10, 64, 64)]
    p = PromptParams(device="cpu", adapt="fuse", trees=20, stroke_reach=reach)
    before = run(segment_job(SegmentRequest(img, truth, box, [img], params=p))).labels[0]
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1  # one stroke across the square at (90, 160)
    request = SegmentRequest(img, truth, box, [img], params=p, corrections=corr, corrected=[(before, corr)])
    after = run(segment_job(request)).labels[0]
    painted, others = np.zeros(img.shape, bool), np.zeros(img.shape, bool)
    painted[82:98, 152:168] = True
    for cy, cx in [(30, 180), (135, 190), (40, 235)]:  # squares more than 64 px from the stroke
        others[cy - 8 : cy + 8, cx - 8 : cx + 8] = True
    # > 0.85, not all: a square's outermost corners may stay background (see the test above)
    assert (after[painted] == 1).mean() > 0.85 and (after[84:96, 154:166] == 1).all()
    assert (before[painted] == 1).mean() < 0.2
    if reach == "local":
        assert np.array_equal(after[others], before[others]) and (after[others] == 1).mean() < 0.2
    else:
        assert (after[others] == 1).mean() > 0.85
    assert np.array_equal(after[:, :100], before[:, :100])  # the discs' side: far from the stroke either way
    with pytest.raises(FewcellError, match="one per image"):
        run(segment_job(SegmentRequest(img, truth, box, [img, img], params=p, corrections=corr,
                                       corrected=[(before, corr)])))


def test_local_changes_keep_what_is_far_or_unconnected():
    from napari_fewcell.engine.prompt import local_changes

    before = np.zeros((2, 40, 200), np.uint8)
    after = before.copy()
    after[:, 10:20, 0:200] = 1  # a band from the stroke to 200 px away
    after[:, 30:35, 0:10] = 2  # a change not connected to the stroke
    corr = np.full(before.shape, -1, np.int32)
    corr[0, 12:14, 0:4] = 1  # a stroke on plane 0 only
    out = local_changes(before, after, corr, reach=50)
    assert out[0, 10:20, :50].all() and not out[0, 10:20, 60:].any()  # within 50 px, connected to the stroke
    assert not out[0, 30:35].any()  # changed, but not connected to the stroke
    assert not out[1].any()  # a plane without a stroke stays as it was
    with pytest.raises(FewcellError, match="the same image"):
        local_changes(before[0], after[0, :20], corr[0])
    with pytest.raises(FewcellError, match="reach of strokes"):
        PromptParams(stroke_reach="far").check()


@pytest.mark.parametrize("check_strokes", [False, True])
def test_a_self_check_that_ignores_strokes_keeps_the_boxes_estimates(check_strokes):
    """check_strokes=False: the self-check reads the box alone, so a stroke leaves every path's estimate (and so the
    path "auto" takes) exactly as without it, while the fitted path still learns the stroke; True: the stroke's
    pixels join the check's fits and move the estimates."""
    seg = Segmenter(PromptParams(device="cpu", adapt="fuse", trees=20, check_strokes=check_strokes))
    img, truth = squares_and_discs()
    box = (16, 16, 96, 96)  # a disc in each quarter, no square
    alone = seg.prepare_prompt_boxes(img, truth, [box])
    seg.adapt(alone)
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1  # one stroke across one square (class 1, which looks unlike the box's discs)
    fixed = seg.prepare_prompt_boxes(img, truth, [box], corrections=corr)
    seg.adapt(fixed)
    assert set(alone.check) == set(fixed.check) == {"none", "fuse"}
    same = all(abs(alone.check[p] - fixed.check[p]) < 1e-9 for p in alone.check)
    assert same != check_strokes
    assert choose(fixed.check) == choose(alone.check) or check_strokes
    assert (seg.segment(img, fixed)[84:96, 154:166] == 1).mean() > 0.9  # the fused path still learnt the stroke


def test_a_correction_round_reuses_the_boxes_self_check():
    """The self-check reads the boxes alone, so after a stroke the segmenter reuses the boxes' estimates instead of
    fitting the check's forests again (the progress shows no check of the fused path), and gives the same path; other
    boxes are checked anew (a check that learns from strokes moves with them: the test above)."""
    img, truth = squares_and_discs()
    box = (16, 16, 96, 96)
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1

    def adapt(seg, boxes, corrections=None):
        steps = []
        prompt = seg.prepare_prompt_boxes(img, truth, boxes, corrections=corrections)
        seg.adapt(prompt, steps.append)
        return prompt, any("fused" in s.message for s in steps)

    seg = Segmenter(PromptParams(device="cpu", adapt="auto", trees=10, check_trees=4))
    alone, checked = adapt(seg, [box])
    fixed, checked_again = adapt(seg, [box], corr)
    assert checked and not checked_again and fixed.check == alone.check and fixed.path == alone.path
    assert fixed.notes["strokes"] == 1  # the stroke is still in the prompt the path learns from
    assert adapt(seg, [(20, 16, 96, 96)], corr)[1]  # another box: checked anew


def test_a_correction_round_reuses_the_check_when_the_request_plans_other_settings():
    """The widget keeps one segmenter per form settings; a request whose parameters differ from it (here: a colour
    prompt with a gray image, read as luminance) gets a segmenter of its own with the same network, and the self-check
    estimates it keeps are shared, so the second round with a stroke skips the check as the first did not."""
    from napari_fewcell.engine.core.progress import run
    from napari_fewcell.engine.prompt import SegmentRequest, segment_job

    img, truth = squares_and_discs()
    colour = np.stack([img, img * 0.5, 1 - img], axis=2)  # a colour prompt; the image is gray
    box = (16, 16, 96, 96)
    corr = np.full(img.shape, -1, np.int32)
    corr[88:92, 152:168] = 1
    params = PromptParams(device="cpu", trees=10, check_trees=4)
    widget_seg = Segmenter(params)
    checked = []
    for corrections in (None, corr):
        steps = []
        request = SegmentRequest(colour, truth, [box], [img], params=params, corrections=corrections)
        run(segment_job(request, widget_seg), steps.append)
        checked.append(any("fused" in s.message for s in steps))
    assert checked == [True, False]
