"""The metrics of `inspector.metrics` on tiny hand-computed cases (every expected value is worked out
in the comments or obvious from the ranks)."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.metrics import (
    RegionScores,
    aupro,
    auroc,
    confusion_metrics,
    label_components,
    pixel_auroc,
    pro_curve,
    proposal_recall,
    region_precision_recall,
)


def _two_images() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A defect image (two components) and a normal image with an empty mask."""
    a = np.zeros((12, 12), bool)
    a[1:4, 1:4] = True
    a[8:10, 7:11] = True
    return [a, np.zeros((12, 12), bool)], [a.astype(np.float32), np.zeros((12, 12), np.float32)]


def test_perfect_heatmap_scores_one():
    masks, heat = _two_images()
    assert pixel_auroc(heat, masks, subsample=1) == 1.0
    assert aupro(heat, masks) == pytest.approx(1.0)


def test_inverted_heatmap_scores_zero():
    masks, heat = _two_images()
    inverted = [1.0 - h for h in heat]
    assert pixel_auroc(inverted, masks, subsample=1) == 0.0
    # Every normal pixel outranks every defect pixel: PRO stays 0 until FPR = 1.
    assert aupro(inverted, masks) == pytest.approx(0.0)


def test_aupro_weighs_a_small_component_like_a_large_one():
    mask = np.zeros((10, 10), bool)
    mask[0:4, 0:5] = True  # large: 20 px
    mask[8, 8] = True  # small: 1 px, not touching the large one
    heat = np.full((10, 10), 0.5)
    heat[0:4, 0:5] = 1.0  # the large component is found...
    heat[8, 8] = 0.0  # ...the small one is scored below every normal pixel
    # Pixel AUROC: 20 positives beat all 79 negatives, 1 beats none -> 20 / 21.
    assert pixel_auroc([heat], [mask], subsample=1) == pytest.approx(20 / 21)
    # PRO is (1 + 0) / 2 = 0.5 from FPR 0 up to FPR 1, so the normalised area is 0.5.
    assert aupro([heat], [mask]) == pytest.approx(0.5)


def test_fpr_limit_interpolates_on_a_sloped_segment():
    # One 2-pixel component (scores 0.9, 0.7) and 10 normal pixels (1.0, 0.7, eight at 0.3).
    mask = np.zeros((1, 12), bool)
    mask[0, :2] = True
    heat = np.array([[0.9, 0.7, 1.0, 0.7, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]])
    fpr, pro = pro_curve([heat], [mask])
    # Descending thresholds: 1.0 -> (0.1, 0); 0.9 -> (0.1, 0.5); 0.7 (tie) -> (0.2, 1); 0.3 -> (1, 1).
    np.testing.assert_allclose(fpr, [0.0, 0.1, 0.1, 0.2, 1.0])
    np.testing.assert_allclose(pro, [0.0, 0.0, 0.5, 1.0, 1.0])
    # Up to 0.15: zero until 0.1, then a trapezoid from (0.1, 0.5) to (0.15, 0.75) = 0.03125.
    assert aupro([heat], [mask], fpr_limit=0.15) == pytest.approx(0.03125 / 0.15)
    # Whole curve: 0.1 * (0.5 + 1) / 2 + 0.8 * 1 = 0.875.
    assert aupro([heat], [mask], fpr_limit=1.0) == pytest.approx(0.875)
    # Pixel AUROC of the same pixels: 0.9 beats 9 of 10 normals, 0.7 beats 8 and ties 1 -> 17.5 / 20.
    assert pixel_auroc([heat], [mask], subsample=1) == pytest.approx(0.875)


def test_binned_thresholds_approximate_the_exact_curve():
    rng = np.random.default_rng(0)
    masks = [rng.random((40, 40)) > 0.8 for _ in range(3)]
    heat = [m * 0.3 + rng.random(m.shape) for m in masks]
    exact = aupro(heat, masks)
    assert aupro(heat, masks, num_thresholds=2000) == pytest.approx(exact, abs=0.01)
    assert 0.2 < exact < 0.9


def test_normal_images_only_add_false_positives():
    mask = np.zeros((4, 4), bool)
    mask[0, 0:4] = True  # 4 defect pixels, 12 normal ones
    heat = mask.astype(float)
    normal_heat = np.zeros((4, 4))
    normal_heat[2, 2] = 2.0  # one normal pixel outranks the defect
    # 28 normal pixels: FPR jumps to 1/28 before PRO reaches 1 -> (0.3 - 1/28) / 0.3.
    got = aupro([heat, normal_heat], [mask, np.zeros((4, 4), bool)])
    assert got == pytest.approx((0.3 - 1 / 28) / 0.3)
    assert aupro([heat], [mask]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="defect"):
        aupro([normal_heat], [np.zeros((4, 4), bool)])
    with pytest.raises(ValueError, match="positive"):
        pixel_auroc([normal_heat], [np.zeros((4, 4), bool)])


def test_components_are_eight_connected():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one diagonal component
    mask[0, 5] = True  # and a separate pixel
    assert label_components(mask)[1] == 2
    heat = np.full((6, 6), 0.5)
    heat[mask] = 1.0
    heat[0, 5] = 0.0
    # 8-connected: PRO = (1 + 0) / 2 = 0.5. Four-connectivity would give (1 + 1 + 1 + 0) / 4.
    assert aupro([heat], [mask]) == pytest.approx(0.5)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc([np.zeros((4, 4))], [np.zeros((4, 5), bool)])
    with pytest.raises(ValueError, match="masks"):
        aupro([np.zeros((4, 4))], [])


def _region_case() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    gt = np.zeros((20, 20), bool)
    gt[0:4, 0:4] = True  # A: 16 px
    gt[10:12, 10:12] = True  # B: 4 px

    def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        m = np.zeros((20, 20), bool)
        m[y0:y1, x0:x1] = True
        return m

    return gt, {
        "exact_a": box(0, 4, 0, 4),  # IoU 1 with A
        "around_b": box(10, 20, 10, 20),  # contains B, IoU 4 / 100 = 0.04
        "beside_a": box(0, 4, 4, 8),  # touches nothing
        "loose_a": box(0, 8, 0, 8),  # contains A, IoU 16 / 64 = 0.25
    }


def test_region_precision_and_recall_count_iou_hits():
    gt, s = _region_case()
    normal = np.zeros((20, 20), bool)
    selected = [[s["exact_a"], s["around_b"], s["beside_a"], s["loose_a"]], [s["exact_a"]]]
    got = region_precision_recall(selected, [gt, normal])
    # Hits: exact_a and loose_a (both on A); the normal image's selection is false -> 2 / 5.
    assert got == RegionScores(n_selected=5, n_correct=2, n_components=2, n_hit=1)
    assert got.precision == pytest.approx(0.4) and got.recall == pytest.approx(0.5)
    lenient = region_precision_recall(selected, [gt, normal], min_iou=0.03)
    assert (lenient.n_correct, lenient.n_hit) == (3, 2)


def test_region_scores_with_nothing_selected_or_nothing_to_find():
    gt, _ = _region_case()
    none = region_precision_recall([[]], [gt])
    assert none.n_selected == 0 and np.isnan(none.precision) and none.recall == 0.0
    empty = region_precision_recall([[np.ones((20, 20), bool)]], [np.zeros((20, 20), bool)])
    assert empty.n_components == 0 and np.isnan(empty.recall) and empty.precision == 0.0


def test_selected_masks_are_resized_to_the_ground_truth():
    gt, s = _region_case()
    doubled = np.kron(s["exact_a"], np.ones((2, 2), bool))  # the same region at 40 x 40
    assert region_precision_recall([[doubled]], [gt]).n_hit == 1


def test_proposal_recall_counts_only_the_top_k():
    gt, s = _region_case()
    ranked = [[s["beside_a"], s["exact_a"], s["around_b"]]]
    assert proposal_recall(ranked, [gt], top_k=1).n_hit == 0
    two = proposal_recall(ranked, [gt], top_k=2)
    assert (two.n_selected, two.n_correct, two.n_hit) == (2, 1, 1) and two.recall == 0.5
    assert proposal_recall(ranked, [gt], top_k=3, min_iou=0.03).recall == 1.0
    with pytest.raises(ValueError):
        proposal_recall(ranked, [gt], top_k=0)


def test_pro_curve_matches_a_threshold_by_threshold_loop():
    """The sort-based curve equals the definition evaluated threshold by threshold."""
    rng = np.random.default_rng(3)
    masks = [rng.random((15, 15)) > 0.85, np.zeros((15, 15), bool), rng.random((15, 15)) > 0.9]
    heat = [np.round(m * 0.4 + rng.random(m.shape), 1) for m in masks]  # rounding makes ties
    fpr, pro = pro_curve(heat, masks)
    comps = [(label_components(m)[0], label_components(m)[1]) for m in masks]
    normal = np.concatenate([h[~m] for h, m in zip(heat, masks, strict=True)])
    thresholds = np.unique(np.concatenate([h.ravel() for h in heat]))[::-1]
    assert fpr.size == pro.size == thresholds.size + 1  # (0, 0), then one point per distinct score
    for i, t in enumerate(thresholds, start=1):
        overlaps = [
            float((h[lab == k] >= t).mean()) for h, (lab, n) in zip(heat, comps, strict=True) for k in range(1, n + 1)
        ]
        assert fpr[i] == pytest.approx(float((normal >= t).mean()))
        assert pro[i] == pytest.approx(np.mean(overlaps))


def test_auroc_helper():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [1, 1])


def test_confusion_metrics_of_yes_no_verdicts():
    # 2 hits, 1 false alarm, 1 escape, 2 correct passes
    counts = confusion_metrics([True, True, True, False, False, False], [True, True, False, True, False, False])
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 1, 1, 2)
    assert counts.precision == pytest.approx(2 / 3) and counts.recall == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 / 3) and counts.accuracy == pytest.approx(4 / 6)
    none = confusion_metrics([False, False], [False, False])  # nothing anomalous, nothing flagged
    assert none.precision is None and none.recall is None and none.f1 == 0.0 and none.accuracy == 1.0
    assert confusion_metrics([], []).f1 is None and confusion_metrics([], []).accuracy is None
