"""Set-of-Mark rendering: numbering, label placement, colours, the mark map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from inspector.localization.marks import (
    BLACK,
    WHITE,
    MarkedImage,
    contrast_ratio,
    default_font_px,
    mark_colour,
    mask_from_record,
    masks_from_map,
    render_marks,
    text_colour_for,
)
from inspector.localization.masks import Proposal, mask_bbox
from tests.conftest import textured_image


def rect(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_mask(shape, marks) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for m in marks:
        x0, y0, x1, y1 = m.label_box
        out[y0:y1, x0:x1] = True
    return out


def test_rectangle_label_at_its_centre_and_numbering_by_area():
    shape = (200, 300)
    img = textured_image(1, shape)
    small = rect(shape, 200, 120, 260, 180)  # 60 x 60, centre (229.5, 149.5)
    large = rect(shape, 20, 20, 140, 100)  # 120 x 80, centre (79.5, 59.5)
    marked = render_marks(img, [Proposal(small, 0.9, "segments"), Proposal(large, 0.1, "heatmap", "big")])
    assert isinstance(marked, MarkedImage)
    first, second = marked.marks
    assert (first.number, second.number) == (1, 2)
    assert np.array_equal(first.mask, large) and np.array_equal(second.mask, small)  # largest first
    assert first.source == "heatmap" and first.label == "big" and first.score == pytest.approx(0.1)
    assert abs(first.anchor[0] - 79.5) <= 1 and abs(first.anchor[1] - 59.5) <= 1
    assert abs(second.anchor[0] - 229.5) <= 1 and abs(second.anchor[1] - 149.5) <= 1
    assert marked.mark(2) is second
    with pytest.raises(KeyError):
        marked.mark(3)


@pytest.mark.parametrize("kind", ["L", "ring"])
def test_label_at_distance_transform_maximum_of_nonconvex_masks(kind):
    shape = (160, 160)
    if kind == "L":
        mask = rect(shape, 20, 20, 60, 140) | rect(shape, 20, 100, 140, 140)
    else:
        mask = disc(shape, 80, 80, 60) & ~disc(shape, 80, 80, 30)
    marked = render_marks(np.zeros(shape, np.uint8), [Proposal(mask, 0.5)])
    (mark,) = marked.marks
    x, y = mark.anchor
    assert mask[y, x]
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    assert dist[y, x] == pytest.approx(dist.max())
    if kind == "ring":
        assert (y - 80) ** 2 + (x - 80) ** 2 > 30**2  # not in the hole
    # the label box lies inside the image
    x0, y0, x1, y1 = mark.label_box
    assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]


def test_crowded_labels_never_overlap_and_stay_in_the_image():
    shape = (128, 128)
    rng = np.random.default_rng(3)
    props = []
    for _ in range(20):  # 20 small masks crowded into a 40 x 40 corner
        x0, y0 = (int(v) for v in rng.integers(0, 32, size=2))
        props.append(Proposal(rect(shape, x0, y0, x0 + int(rng.integers(3, 9)), y0 + int(rng.integers(3, 9))), 0.5))
    marked = render_marks(textured_image(2, shape), props)
    assert len(marked.marks) == 20
    boxes = [m.label_box for m in marked.marks]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] < a[2] <= shape[1] and 0 <= a[1] < a[3] <= shape[0]
        for b in boxes[i + 1 :]:
            assert not boxes_overlap(a, b), (a, b)
    # areas are non-increasing with the number
    areas = [m.area for m in marked.marks]
    assert areas == sorted(areas, reverse=True)
    # each label is centred on its anchor
    for m in marked.marks:
        x0, y0, x1, y1 = m.label_box
        assert abs((x0 + x1) / 2 - m.anchor[0]) <= 1 and abs((y0 + y1) / 2 - m.anchor[1]) <= 1


def test_two_masks_sharing_a_best_point_get_separate_labels():
    shape = (100, 100)
    a = rect(shape, 30, 30, 70, 70)
    b = rect(shape, 31, 31, 69, 69)  # same centre
    marked = render_marks(np.full(shape, 128, np.uint8), [Proposal(a), Proposal(b)])
    m1, m2 = marked.marks
    assert not boxes_overlap(m1.label_box, m2.label_box)
    assert a[m1.anchor[1], m1.anchor[0]] and b[m2.anchor[1], m2.anchor[0]]  # both still inside


def test_mark_map_round_trips_masks_and_is_json():
    shape = (90, 120)
    masks = [disc(shape, 40, 50, 25), rect(shape, 0, 0, 120, 10), disc(shape, 70, 100, 8) & ~disc(shape, 70, 100, 3)]
    marked = render_marks(textured_image(4, shape), [Proposal(m, 0.3 * i, "sam") for i, m in enumerate(masks)])
    records = json.loads(json.dumps(marked.mark_map()))
    assert [r["mark"] for r in records] == [1, 2, 3]
    for rec, mark in zip(records, marked.marks, strict=True):
        rebuilt = mask_from_record(rec, shape)
        assert rebuilt.dtype == bool and np.array_equal(rebuilt, mark.mask)
        assert tuple(rec["bbox"]) == mask_bbox(mark.mask)
        assert rec["area"] == int(mark.mask.sum())
        assert rec["mask"]["size"] == [rec["bbox"][3] - rec["bbox"][1], rec["bbox"][2] - rec["bbox"][0]]
        assert rec["source"] == "sam" and tuple(rec["anchor"]) == mark.anchor
    assert {tuple(map(tuple, np.argwhere(m))) for m in masks_from_map(records, shape).values()} == {
        tuple(map(tuple, np.argwhere(m))) for m in masks
    }
    bad = dict(records[0], bbox=[0, 0, 500, 500])
    with pytest.raises(ValueError):
        mask_from_record(bad, shape)


def test_label_text_colour_by_contrast():
    assert text_colour_for((0, 0, 128)) == WHITE
    assert text_colour_for((20, 20, 20)) == WHITE
    assert text_colour_for((255, 225, 25)) == BLACK
    assert text_colour_for((250, 250, 250)) == BLACK
    assert contrast_ratio(WHITE, BLACK) == pytest.approx(21.0)
    shape = (120, 120)
    dark = rect(shape, 10, 10, 60, 60)
    light = rect(shape, 70, 70, 110, 110)
    # the palette's first colours: red (index 0) and green (1); check the rendered pixels too
    marked = render_marks(np.full(shape, 128, np.uint8), [Proposal(dark), Proposal(light)])
    for m in marked.marks:
        assert m.text_colour == text_colour_for(m.colour)
        x0, y0, x1, y1 = m.label_box
        patch = marked.image[y0:y1, x0:x1].reshape(-1, 3)
        colours = {tuple(int(v) for v in c) for c in patch}
        assert m.colour in colours and m.text_colour in colours  # fill, and text / outline
    navy = next(i for i in range(30) if mark_colour(i) == (0, 0, 128))
    assert text_colour_for(mark_colour(navy)) == WHITE


def test_fill_changes_inside_masks_only_outside_labels():
    shape = (150, 200)
    img = textured_image(5, shape)
    masks = [disc(shape, 60, 60, 30), rect(shape, 120, 80, 180, 130)]
    marked = render_marks(img, [Proposal(m) for m in masks], style="fill", alpha=0.5)
    changed = np.any(marked.image != img, axis=2)
    labels = label_mask(shape, marked.marks)
    union = masks[0] | masks[1]
    assert changed[union & ~labels].mean() > 0.95
    assert not changed[~union & ~labels].any()
    # contour-only leaves the interior alone apart from the outline band and the label
    contour = render_marks(img, [Proposal(m) for m in masks], style="contour")
    ch = np.any(contour.image != img, axis=2)
    interior = ndimage.binary_erosion(union, iterations=3) & ~label_mask(shape, contour.marks)
    assert not ch[interior].any()
    assert ch[union & ~ndimage.binary_erosion(union)].mean() > 0.9
    assert not ch[~union & ~label_mask(shape, contour.marks)].any()
    # "both" differs from either
    both = render_marks(img, [Proposal(m) for m in masks])
    assert not np.array_equal(both.image, marked.image) and not np.array_equal(both.image, contour.image)


def test_small_mask_drawn_on_top_of_large():
    shape = (100, 100)
    big = rect(shape, 0, 0, 100, 100)
    small = rect(shape, 5, 5, 25, 25)
    marked = render_marks(np.zeros(shape, np.uint8), [Proposal(small), Proposal(big)], style="fill", alpha=1.0)
    big_mark, small_mark = marked.marks
    assert big_mark.number == 1 and small_mark.number == 2
    labels = label_mask(shape, marked.marks)
    px = marked.image[small & ~labels]
    assert (px == np.asarray(small_mark.colour, np.uint8)).all()


def test_gray_input_deterministic_and_font_scales():
    shape = (256, 256)
    gray = textured_image(6, shape)[:, :, 0]
    props = [Proposal(disc(shape, 100, 100, 40)), Proposal(rect(shape, 150, 150, 230, 230))]
    a = render_marks(gray, props)
    b = render_marks(gray, props)
    assert a.image.shape == (256, 256, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert [m.label_box for m in a.marks] == [m.label_box for m in b.marks]
    small_h = a.marks[0].label_box[3] - a.marks[0].label_box[1]
    big = render_marks(
        np.kron(gray, np.ones((4, 4), np.uint8)), [Proposal(np.kron(p.mask, np.ones((4, 4), bool))) for p in props]
    )
    big_h = big.marks[0].label_box[3] - big.marks[0].label_box[1]
    assert default_font_px((1024, 1024)) > default_font_px((256, 256)) >= 11
    assert big_h >= 2 * small_h and small_h >= 12


def test_empty_masks_skipped_and_bad_arguments():
    shape = (50, 50)
    props = [Proposal(np.zeros(shape, bool)), Proposal(rect(shape, 5, 5, 20, 20))]
    marked = render_marks(np.zeros(shape, np.uint8), props)
    assert [m.number for m in marked.marks] == [1]
    assert render_marks(np.zeros(shape, np.uint8), []).marks == []
    with pytest.raises(ValueError, match="style"):
        render_marks(np.zeros(shape, np.uint8), [], style="halo")
    with pytest.raises(ValueError):
        render_marks(np.zeros(shape, np.uint8), [], alpha=2.0)


def test_big_mask_label_does_not_hide_a_nested_mark():
    shape = (120, 120)
    big = rect(shape, 10, 10, 110, 110)
    nested = rect(shape, 50, 50, 70, 70)  # right where the big mask's best point is
    marked = render_marks(np.full(shape, 90, np.uint8), [Proposal(big), Proposal(nested)])
    big_mark, small_mark = marked.marks
    assert nested[small_mark.anchor[1], small_mark.anchor[0]]
    x0, y0, x1, y1 = big_mark.label_box
    assert not nested[y0:y1, x0:x1].any()
    assert big[big_mark.anchor[1], big_mark.anchor[0]]


def test_a_small_mask_is_not_hidden_under_its_own_label():
    """A blowhole smaller than its label gets the label beside it, so the model still sees it."""
    shape = (200, 260)
    small = disc(shape, 100, 130, 6)
    big = rect(shape, 10, 10, 120, 80)
    marked = render_marks(textured_image(1, shape), [Proposal(big, 0.5), Proposal(small, 0.9)])
    tiny = next(m for m in marked.marks if m.area == int(small.sum()))
    x0, y0, x1, y1 = tiny.label_box
    covered = small[max(0, y0) : y1, max(0, x0) : x1].sum()
    assert covered <= 0.25 * small.sum()
    # ... and stays close to it (within two label sizes of the mask)
    cy, cx = 100, 130
    assert abs((x0 + x1) / 2 - cx) < 2 * (x1 - x0) + 6 and abs((y0 + y1) / 2 - cy) < 2 * (y1 - y0) + 6


def test_operator_regions_are_numbered_first_and_prefix_marks_reference_labels():
    shape = (120, 160)
    drawn = rect(shape, 100, 80, 120, 100)  # small, yet number 1
    big = rect(shape, 0, 0, 90, 70)
    marked = render_marks(textured_image(2, shape), [Proposal(big, 0.9, "segments"), Proposal(drawn, 1.0, "operator")])
    assert [m.source for m in marked.marks] == ["operator", "segments"]
    assert marked.mark(1).area == int(drawn.sum())
    prefixed = render_marks(textured_image(2, shape), [Proposal(big, 0.9)], label_prefix="R")
    assert not np.array_equal(prefixed.image, render_marks(textured_image(2, shape), [Proposal(big, 0.9)]).image)
