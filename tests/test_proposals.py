"""Region proposals: classical segments, heat-map blobs, hybrid ranking, operator regions, refining."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from inspector.localization.masks import Proposal
from inspector.localization.proposals import (
    HeatmapProposals,
    HybridProposals,
    ProposalMethod,
    RefineParams,
    SegmentProposals,
    fit_heatmap,
    make_proposer,
    mask_iou,
    operator_proposals,
    proposal_methods,
    rank_by_heatmap,
    refine_proposals,
)
from tests.conftest import textured_image


def two_blob_scene(h: int = 160, w: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background with a red disc (a) and a blue rectangle (b), and their true masks."""
    img = textured_image(0, (h, w)).copy()
    yy, xx = np.mgrid[:h, :w]
    a = (yy - 0.35 * h) ** 2 + (xx - 0.3 * w) ** 2 < (0.12 * min(h, w)) ** 2
    b = (np.abs(yy - 0.65 * h) < 0.1 * h) & (np.abs(xx - 0.72 * w) < 0.12 * w)
    img[a] = (200, 40, 40)
    img[b] = (30, 60, 200)
    return img, a, b


def gaussian_heat(shape: tuple[int, int], centre: tuple[float, float], sigma: float, peak: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return (peak * np.exp(-d2 / (2 * sigma**2))).astype(np.float32)


def rect_mask(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def assert_valid(props: list[Proposal], shape: tuple[int, int]) -> None:
    for p in props:
        assert p.mask.shape == shape and p.mask.dtype == bool and p.mask.any()


# ------------------------------------------------------------------ segments


@pytest.mark.parametrize("size", [(160, 200), (600, 520)])
def test_segments_recover_both_blobs(size):
    img, a, b = two_blob_scene(*size)
    props = SegmentProposals().propose(img)
    assert_valid(props, size)
    assert 2 <= len(props) <= 12
    assert max(mask_iou(p.mask, a) for p in props) >= 0.7
    assert max(mask_iou(p.mask, b) for p in props) >= 0.7
    # without a heat map, saliency ranks the two high-contrast blobs first (edge bands score low)
    top = props[:2]
    assert max(mask_iou(p.mask, a) for p in top) >= 0.7
    assert max(mask_iou(p.mask, b) for p in top) >= 0.7
    assert all(0.0 <= p.score <= 1.0 for p in props)
    assert [p.score for p in props] == sorted((p.score for p in props), reverse=True)


def test_segments_slic_mode_and_gray_input():
    img, a, _ = two_blob_scene()
    gray = img.mean(axis=2).astype(np.uint8)
    props = SegmentProposals(mode="slic", n_segments=60).propose(gray)
    assert_valid(props, gray.shape)
    # a superpixel lies mostly inside the red disc
    assert max(np.count_nonzero(p.mask & a) / p.area for p in props) >= 0.8


def test_segments_downscaled_work_copy_keeps_full_resolution_masks():
    img, a, _ = two_blob_scene(600, 520)
    seg = SegmentProposals(work_side=128)
    labels = seg.label_image(img)
    assert labels.shape == (600, 520) and labels.min() >= 1
    props = seg.propose(img)
    assert_valid(props, (600, 520))
    assert max(mask_iou(p.mask, a) for p in props) >= 0.7


def test_segments_ranked_by_heat_when_given():
    img, _, b = two_blob_scene()
    heat = gaussian_heat(img.shape[:2], (0.65 * 160, 0.72 * 200), 12, 0.95)  # on the blue rectangle
    props = SegmentProposals().propose(img, heat)
    assert mask_iou(props[0].mask, b) >= 0.7
    assert [p.score for p in props] == sorted((p.score for p in props), reverse=True)


def test_segment_parameters_validated():
    with pytest.raises(ValueError, match="mode"):
        SegmentProposals(mode="watershed")
    with pytest.raises(ValueError):
        SegmentProposals(scale=0)


# ------------------------------------------------------------------ heat map


def test_heatmap_blobs_are_exactly_the_regions_above_half():
    shape = (120, 150)
    heat = np.full(shape, 0.1, dtype=np.float32)
    heat[10:30, 20:50] = 0.8  # blob 1, peak 0.8
    heat[60:100, 90:130] = 0.6  # blob 2, peak 0.95 at one pixel
    heat[80, 100] = 0.95
    heat[50:55, 10:15] = 0.45  # below the level: no blob
    props = HeatmapProposals().propose(np.zeros(shape, dtype=np.uint8), heat)
    assert len(props) == 2
    assert np.array_equal(props[0].mask, rect_mask(shape, 90, 60, 130, 100))
    assert np.array_equal(props[1].mask, rect_mask(shape, 20, 10, 50, 30))
    assert props[0].score == pytest.approx(0.95) and props[1].score == pytest.approx(0.8)
    assert {p.label for p in props} == {"anomaly candidate"} and {p.source for p in props} == {"heatmap"}


def test_heatmap_weak_candidate_when_nothing_crosses():
    shape = (80, 80)
    heat = gaussian_heat(shape, (20, 30), 5, 0.4) + gaussian_heat(shape, (60, 60), 5, 0.35)
    props = HeatmapProposals().propose(np.zeros(shape, dtype=np.uint8), heat)
    assert len(props) == 1
    weak = props[0]
    assert weak.label == "weak candidate"
    assert weak.score == pytest.approx(float(heat.max()))
    assert weak.mask[20, 30] and not weak.mask[60, 60]
    # the second bump also crosses 75 % of the peak, but only the blob holding the peak is returned
    labels, n = ndimage.label(heat >= 0.75 * heat.max())
    assert n == 2
    assert np.array_equal(weak.mask, labels == labels[20, 30])


def test_heatmap_empty_and_missing():
    shape = (40, 40)
    assert HeatmapProposals().propose(np.zeros(shape, np.uint8), np.zeros(shape, np.float32)) == []
    with pytest.raises(ValueError, match="heat map"):
        HeatmapProposals().propose(np.zeros(shape, np.uint8))


def test_heatmap_at_another_resolution_is_resized():
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[2:5, 2:5] = 1.0
    fitted = fit_heatmap(heat, (100, 100))
    assert fitted.shape == (100, 100)
    props = HeatmapProposals().propose(np.zeros((100, 100), np.uint8), heat)
    assert len(props) == 1 and props[0].mask[35, 35] and not props[0].mask[80, 80]


# ------------------------------------------------------------------ hybrid


def test_hybrid_ranks_the_blob_under_the_heat_peak_first():
    img, a, b = two_blob_scene()
    heat = gaussian_heat(img.shape[:2], (0.35 * 160, 0.3 * 200), 14, 0.9)  # peak on the red disc
    props = HybridProposals().propose(img, heat)
    assert_valid(props, img.shape[:2])
    assert mask_iou(props[0].mask, a) >= 0.8  # the object outline, not the blurry blob
    assert props[0].source == "hybrid"
    assert any(mask_iou(p.mask, b) >= 0.7 for p in props) or len(props) == 12
    assert [p.score for p in props] == sorted((p.score for p in props), reverse=True)
    # moving the peak to the other blob reorders
    heat_b = gaussian_heat(img.shape[:2], (0.65 * 160, 0.72 * 200), 12, 0.9)
    assert mask_iou(HybridProposals().propose(img, heat_b)[0].mask, b) >= 0.8


def test_hybrid_without_heatmap_falls_back_to_segments():
    img, a, _ = two_blob_scene()
    props = HybridProposals().propose(img)
    assert max(mask_iou(p.mask, a) for p in props) >= 0.7
    assert {p.source for p in props} == {"segments"}


# ------------------------------------------------------------------ refine, rank, operator


def test_refine_filters_by_area():
    shape = (100, 100)  # 10000 px: min 0.0005 -> 5 px, max 0.6 -> 6000 px
    tiny = Proposal(rect_mask(shape, 0, 0, 2, 2), 0.9, "segments")  # 4 px
    huge = Proposal(rect_mask(shape, 0, 0, 100, 70), 0.8, "segments")  # 7000 px
    ok = Proposal(rect_mask(shape, 10, 10, 30, 30), 0.1, "segments")
    empty = Proposal(np.zeros(shape, bool), 1.0, "segments")
    assert refine_proposals([tiny, huge, ok, empty], shape) == [ok]
    assert refine_proposals([tiny, huge, ok], shape, min_area_frac=0.0, max_area_frac=1.0) == [tiny, huge, ok]


def test_refine_merges_near_duplicates_keeping_the_higher_score():
    shape = (100, 100)
    base = Proposal(rect_mask(shape, 10, 10, 50, 50), 0.5, "segments")  # 1600 px
    dup = Proposal(rect_mask(shape, 10, 10, 50, 48), 0.7, "segments")  # IoU 0.95
    near = Proposal(rect_mask(shape, 10, 10, 50, 30), 0.6, "segments")  # IoU 0.5 with base
    kept = refine_proposals([base, dup, near], shape, merge_iou=0.7)
    assert kept == [dup, near]
    assert refine_proposals([base, dup, near], shape, merge_iou=0.4) == [dup]
    assert refine_proposals([base, dup], shape, merge_iou=1.0) == [dup, base]  # only identical masks merge


def test_refine_caps_count_and_keeps_stable_order():
    shape = (100, 100)
    props = [
        Proposal(rect_mask(shape, 10 * i, 0, 10 * i + 8, 8), s, "segments")
        for i, s in enumerate([0.3, 0.9, 0.3, 0.5, 0.1, 0.9])
    ]
    kept = refine_proposals(props, shape, max_count=4)
    assert kept == [props[1], props[5], props[3], props[0]]


def test_refine_keeps_operator_regions_first():
    shape = (100, 100)
    op_tiny, op_big = operator_proposals([(0, 0, 1, 1), (0, 0, 100, 90)], shape)
    auto = [Proposal(rect_mask(shape, 20 + 10 * i, 20, 28 + 10 * i, 28), 0.9 - 0.1 * i, "segments") for i in range(5)]
    dup_of_op = Proposal(rect_mask(shape, 0, 0, 100, 89), 0.99, "segments")
    kept = refine_proposals([*auto, dup_of_op, op_tiny, op_big], shape, max_count=4)
    assert kept[:2] == [op_tiny, op_big]  # first, though one is 1 px and the other 90 % of the image
    assert kept[2:] == auto[:2]  # the duplicate of an operator region is dropped; the cap counts both
    only_ops = refine_proposals([*auto, op_tiny, op_big], shape, max_count=1)
    assert only_ops == [op_tiny, op_big]  # operator regions are never capped away


def test_refine_rejects_masks_of_another_shape():
    with pytest.raises(ValueError, match="shape"):
        refine_proposals([Proposal(np.ones((10, 10), bool), 1.0)], (20, 20))


def test_operator_proposals_from_boxes_and_masks():
    shape = (50, 60)
    mask = rect_mask(shape, 5, 5, 10, 10)
    props = operator_proposals([(10.5, 20, 3.2, 30), mask, (100, 100, 120, 120), (-5, -5, 2, 2)], shape)
    assert [p.source for p in props] == ["operator"] * 3
    assert np.array_equal(props[0].mask, rect_mask(shape, 3, 20, 11, 30))  # reversed, rounded outwards
    assert np.array_equal(props[1].mask, mask)
    assert np.array_equal(props[2].mask, rect_mask(shape, 0, 0, 2, 2))  # clipped; the outside box skipped
    assert [p.label for p in props] == ["operator region 1", "operator region 2", "operator region 3"]
    with pytest.raises(ValueError):
        operator_proposals([np.ones((5, 5), bool)], shape)


def test_rank_by_heatmap_orders_by_mean_heat():
    shape = (60, 60)
    heat = np.zeros(shape, np.float32)
    heat[0:20, 0:20] = 0.9
    cold = Proposal(rect_mask(shape, 40, 40, 60, 60), 0.99, "sam")
    hot = Proposal(rect_mask(shape, 0, 0, 20, 20), 0.1, "sam")
    half = Proposal(rect_mask(shape, 0, 0, 20, 40), 0.5, "sam")
    ranked = rank_by_heatmap([cold, half, hot], heat)
    assert [p.score for p in ranked] == pytest.approx([0.9, 0.45, 0.0])
    assert [id(p.mask) for p in ranked] == [id(hot.mask), id(half.mask), id(cold.mask)]
    assert cold.score == 0.99  # originals untouched


# ------------------------------------------------------------------ registry and settings


def test_proposal_methods_depend_on_heatmap():
    assert set(proposal_methods(False)) == {"segments"}
    methods = proposal_methods(True)
    assert set(methods) == {"segments", "heatmap", "hybrid"}
    for name, method in methods.items():
        assert isinstance(method, ProposalMethod) and method.name == name
    assert methods["heatmap"].needs_heatmap and not methods["segments"].needs_heatmap


def test_make_proposer_from_settings():
    seg = make_proposer(
        {
            "method": "segments",
            "max_marks": 5,
            "min_area_frac": 0.001,
            "segments": {"mode": "slic", "n_segments": 40, "unknown": 1},
        }
    )
    assert isinstance(seg, SegmentProposals)
    assert seg.mode == "slic" and seg.n_segments == 40
    assert seg.refine == RefineParams(min_area_frac=0.001, max_count=5)
    img, _, _ = two_blob_scene()
    assert 1 <= len(seg.propose(img)) <= 5
    assert isinstance(make_proposer({"method": "heatmap"}), HeatmapProposals)
    hybrid = make_proposer({"method": "Hybrid", "merge_iou": 0.5, "segments": {"scale": 100}})
    assert isinstance(hybrid, HybridProposals) and hybrid.segments.scale == 100
    assert hybrid.refine.merge_iou == 0.5
    assert isinstance(make_proposer({}), SegmentProposals)


def test_make_proposer_errors():
    from inspector.localization.sam import SamUnavailableError

    with pytest.raises(ValueError, match="unknown proposal method 'grabcut'"):
        make_proposer({"method": "grabcut"})
    with pytest.raises(ValueError, match="max_marks"):
        make_proposer({"method": "segments", "max_marks": "many"})
    with pytest.raises(ValueError, match="max_count"):
        make_proposer({"method": "segments", "max_marks": 0})
    with pytest.raises(SamUnavailableError, match=r"sam_vit_b_01ec64\.pth"):
        make_proposer({"method": "sam", "sam": {"model_type": "vit_b", "checkpoint": ""}})
    with pytest.raises(SamUnavailableError, match="does not exist"):
        make_proposer({"method": "sam", "sam": {"model_type": "vit_b", "checkpoint": "/nonexistent/sam.pth"}})


def test_snap_to_segments_takes_the_object_not_the_surface():
    from inspector.localization.proposals import snap_to_segments

    labels = np.ones((100, 100), dtype=np.int32)  # segment 1: a large surface
    labels[10:30, 10:30] = 2  # segment 2: a 400-px object
    labels[60:64, 60:64] = 3  # segment 3: a 16-px part
    blob = rect_mask(labels.shape, 12, 12, 24, 24)  # 144 px, 36 % of the object
    assert np.array_equal(snap_to_segments(blob, labels), labels == 2)
    scratch = rect_mask(labels.shape, 70, 70, 80, 80)  # 100 px on the surface (1 % of it)
    assert not snap_to_segments(scratch, labels).any()
    around = rect_mask(labels.shape, 58, 58, 66, 66)  # covers the whole part and some surface
    assert np.array_equal(snap_to_segments(around, labels), labels == 3)
