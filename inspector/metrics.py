"""Every metric the workstation reports, in one place, under the names the papers use.

Image level (is the case anomalous?), as in the MVTec AD, VisA and MMAD papers:

- **AUROC** (`auroc`): the area under the ROC curve, P(score of an anomalous case > score of a
  normal one), ties counting half; from average ranks (the Mann-Whitney U statistic): exact,
  O(n log n), no thresholds. In plain numpy: scikit-learn is not a dependency of the app.
- **AP** (`average_precision`): the area under the precision-recall curve as the mean precision at
  each anomalous case (ties grouped); `roc_curve` gives the ROC points for plots.
- **precision, recall, F1, accuracy** of a yes/no verdict (`confusion_metrics`), the figures of
  the VLM-as-inspector studies (MMAD: "accuracy"; escape rate = 1 - recall).

Pixel and region level (where is the anomaly?):


- **Pixel AUROC** (pooled over every pixel of every image) says how well the heat map orders
  defect pixels above normal ones, but it is dominated by large defects: one big "uneven" area
  outweighs a hundred blowholes.
- **AUPRO** (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021) weighs every
  ground-truth region equally, however small, and only looks at low false-positive rates (up to
  30 % by default), where an inspector actually operates. It is computed exactly like the MVTec
  AD evaluation code: the per-region overlap (PRO) at a threshold is the mean, over all connected
  components of all masks, of the fraction of that component's pixels at or above the threshold;
  the false-positive rate is the fraction of normal pixels (outside every mask, in all images,
  normal images included) at or above it. PRO is integrated over FPR in [0, limit] with the
  trapezoid rule, interpolating linearly at exactly the limit, and divided by the limit so that a
  perfect map scores 1. Every distinct score is a threshold (one sort, no loop over thresholds).
- **Region precision / recall** judges marks and proposals, which are masks, not scores: did the
  marks the model selected land on defects, and are the defects among the top-k proposals.

Hit rule for regions: a mask *hits* a ground-truth component when their intersection over union
is at least ``min_iou`` (0.1 by default). IoU is symmetric, so it penalises both a mark that
grazes a defect and a mark so large that it "covers" everything (intersection-over-the-smaller
would count a whole-image mask as hitting every defect). 0.1 still accepts a mark up to ten times
the defect's area that contains it, which points an operator at the right spot; thin cracks and
small blowholes rarely reach the 0.5 used for object detection with coarse region masks.
Components are 8-connected (``scipy.ndimage.label`` with a full 3x3 structure), as in the MVTec
evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "ConfusionMetrics",
    "RegionScores",
    "aupro",
    "auroc",
    "average_precision",
    "confusion_metrics",
    "label_components",
    "pixel_auroc",
    "pro_curve",
    "proposal_recall",
    "region_precision_recall",
    "roc_curve",
]

# ------------------------------------------------------------------------------ image level


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    Computed from average ranks (the Mann-Whitney U statistic), so it is exact, O(n log n) and
    needs no thresholds. ``labels`` are truthy for positives (anomalous). Raises ValueError when
    one class is missing, because the area is undefined then.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties replaced by their mean rank (like scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Boundaries of runs of equal values.
    new_run = np.empty(sorted_vals.size, dtype=bool)
    new_run[0] = True
    np.not_equal(sorted_vals[1:], sorted_vals[:-1], out=new_run[1:])
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], sorted_vals.size)
    mean_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive (ties grouped)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    hits = np.cumsum(y)
    precision_at = hits / np.arange(1, len(y) + 1)
    # with tied scores, every member of a tie gets the precision at the end of the tie
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tie_end = np.flatnonzero(last_of_tie)
    group_precision = np.repeat(precision_at[tie_end], np.diff(np.r_[-1, tie_end]))
    return float(group_precision[y].sum() / y.sum())


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> list[tuple[float, float]]:
    """(false-positive rate, true-positive rate) points from the highest threshold down."""
    points = [(0.0, 0.0)]
    n_pos, n_neg = labels.sum(), (~labels).sum()
    for threshold in np.unique(scores)[::-1]:
        above = scores >= threshold
        points.append((float((above & ~labels).sum() / n_neg), float((above & labels).sum() / n_pos)))
    return points


@dataclass(frozen=True)
class ConfusionMetrics:
    """Counts and rates of yes/no verdicts against the truth (None where undefined)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p and r:
            return 2 * p * r / (p + r)
        return 0.0 if self.tp + self.fp + self.fn + self.tn else None

    @property
    def accuracy(self) -> float | None:
        n = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / n if n else None


def confusion_metrics(predicted: Sequence[bool], truth: Sequence[bool]) -> ConfusionMetrics:
    """Yes/no verdicts (True: anomalous) against the truth, pair by pair."""
    pairs = list(zip(predicted, truth, strict=True))
    return ConfusionMetrics(
        tp=sum(p and t for p, t in pairs),
        fp=sum(p and not t for p, t in pairs),
        fn=sum((not p) and t for p, t in pairs),
        tn=sum((not p) and not t for p, t in pairs),
    )


# ------------------------------------------------------------------------ pixel and region level

_EIGHT = np.ones((3, 3), dtype=bool)


def _check_pairs(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
    if len(heatmaps) != len(masks):
        raise ValueError(f"{len(heatmaps)} heat maps but {len(masks)} masks")
    if not heatmaps:
        raise ValueError("no images to evaluate")
    for i, (h, m) in enumerate(zip(heatmaps, masks, strict=True)):
        if np.shape(h) != np.shape(m):
            raise ValueError(f"image {i}: heat map {np.shape(h)} and mask {np.shape(m)} differ in shape")


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (labels with 0 = background, count)."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=_EIGHT)
    return labels, int(n)


def pixel_auroc(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray], subsample: int = 2) -> float:
    """AUROC over the pooled pixels of all images (normal images: all pixels negative).

    `subsample` keeps every n-th pixel in each direction to bound memory on hundreds of images
    (the benchmark's rule); 1 uses every pixel. ValueError when no pixel is positive.
    """
    _check_pairs(heatmaps, masks)
    s = max(1, int(subsample))
    scores = np.concatenate([np.asarray(h, dtype=np.float32)[::s, ::s].ravel() for h in heatmaps])
    labels = np.concatenate([np.asarray(m, dtype=bool)[::s, ::s].ravel() for m in masks])
    return auroc(scores, labels)


def pro_curve(
    heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray], subsample: int = 1, num_thresholds: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at every distinct score, from the strictest threshold down, starting at (0, 0).

    Each defect pixel carries the weight 1 / (number of components * its component's area), so
    the cumulative weight of the pixels at or above a threshold is the mean per-component
    overlap there; the cumulative count of normal pixels gives the FPR. Components are labelled
    on the full-resolution mask and their areas counted on the subsampled grid (a component no
    sampled pixel falls on is dropped). `num_thresholds` (optional) keeps only that many points,
    at evenly spaced score levels, the "binned" variant some libraries use; None is exact.
    """
    _check_pairs(heatmaps, masks)
    s = max(1, int(subsample))
    score_parts, neg_parts = [], []
    areas_all: list[np.ndarray] = []
    offset = 0
    comp_parts = []
    for h, m in zip(heatmaps, masks, strict=True):
        labels, n = label_components(m)
        lab = labels[::s, ::s].ravel()
        score_parts.append(np.asarray(h, dtype=np.float64)[::s, ::s].ravel())
        areas = np.bincount(lab, minlength=n + 1)[1:]
        areas_all.append(areas)
        comp_parts.append(np.where(lab > 0, lab + offset, 0))
        neg_parts.append(lab == 0)
        offset += n
    areas = np.concatenate(areas_all) if areas_all else np.zeros(0, np.int64)
    n_regions = int(np.count_nonzero(areas))
    neg = np.concatenate(neg_parts)
    n_neg = int(neg.sum())
    if n_regions == 0:
        raise ValueError("AUPRO needs at least one ground-truth defect pixel")
    if n_neg == 0:
        raise ValueError("AUPRO needs at least one normal pixel")
    comp = np.concatenate(comp_parts)
    scores = np.concatenate(score_parts)
    weight = np.zeros(scores.size, dtype=np.float64)
    pos = comp > 0
    weight[pos] = 1.0 / (n_regions * areas[comp[pos] - 1])
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    pro = np.cumsum(weight[order])
    fpr = np.cumsum(neg[order]) / n_neg
    # One point per distinct score: the last pixel of each run of ties.
    last = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    if num_thresholds is not None and num_thresholds > 0:
        levels = np.linspace(sorted_scores[0], sorted_scores[-1], int(num_thresholds))
        # Index of the last pixel with score >= level (scores are descending).
        idx = np.searchsorted(-sorted_scores, -levels, side="right") - 1
        last = np.zeros_like(last)
        last[idx[idx >= 0]] = True
    fpr = np.concatenate(([0.0], np.clip(fpr[last], 0.0, 1.0)))
    pro = np.concatenate(([0.0], np.clip(pro[last], 0.0, 1.0)))
    return fpr, pro


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x in [0, x_max]; x ascending, linear interpolation at x_max."""
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0)) if xs.size > 1 else 0.0
    beyond = np.flatnonzero(~inside)
    if beyond.size and xs.size:
        j = beyond[0]  # first point past the limit; the last point inside precedes it
        x0, y0, x1, y1 = xs[-1], ys[-1], x[j], y[j]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += (x_max - x0) * (y0 + y_at) / 2.0
    return area


def aupro(
    heatmaps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    fpr_limit: float = 0.3,
    subsample: int = 1,
    num_thresholds: int | None = None,
) -> float:
    """Area under the PRO curve up to `fpr_limit`, divided by the limit (1 = perfect, see module doc)."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    fpr, pro = pro_curve(heatmaps, masks, subsample=subsample, num_thresholds=num_thresholds)
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


@dataclass(frozen=True)
class RegionScores:
    """Region-level hits: counts and the ratios made from them (NaN where a count is 0)."""

    n_selected: int  # masks judged (all selected marks, or the top-k proposals of every image)
    n_correct: int  # of those, masks that hit some ground-truth component of their image
    n_components: int  # ground-truth components over all images
    n_hit: int  # components hit by at least one judged mask

    @property
    def precision(self) -> float:
        return self.n_correct / self.n_selected if self.n_selected else float("nan")

    @property
    def recall(self) -> float:
        return self.n_hit / self.n_components if self.n_components else float("nan")


def _resize_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from inspector.localization.masks import resize_mask

    m = np.asarray(mask, dtype=bool)
    return m if m.shape == shape else resize_mask(m, shape)


def region_precision_recall(
    selected_masks_per_image: Sequence[Sequence[np.ndarray]], gt_masks: Sequence[np.ndarray], min_iou: float = 0.1
) -> RegionScores:
    """Precision of the selected masks and recall of the ground-truth components (IoU hit rule).

    ``selected_masks_per_image[i]`` are the masks chosen on image i (possibly none);
    ``gt_masks[i]`` is its ground truth (empty for a normal image, whose selections all count as
    false). Selected masks of another size are resized (nearest) to the ground truth's.
    """
    if len(selected_masks_per_image) != len(gt_masks):
        raise ValueError(f"{len(selected_masks_per_image)} images of selections but {len(gt_masks)} masks")
    n_selected = n_correct = n_components = n_hit = 0
    for selected, gt in zip(selected_masks_per_image, gt_masks, strict=True):
        labels, n = label_components(gt)
        n_components += n
        comp_area = np.bincount(labels.ravel(), minlength=n + 1)
        hit = np.zeros(n + 1, dtype=bool)
        for mask in selected:
            m = _resize_to(mask, labels.shape)
            n_selected += 1
            if n == 0 or not m.any():
                continue
            inter = np.bincount(labels[m], minlength=n + 1).astype(np.float64)
            union = comp_area + m.sum() - inter
            iou = inter / np.maximum(union, 1)
            iou[0] = 0.0  # background is not a component
            good = iou >= min_iou
            if good.any():
                n_correct += 1
                hit |= good
        n_hit += int(hit[1:].sum())
    return RegionScores(n_selected, n_correct, n_components, n_hit)


def proposal_recall(
    proposal_masks_per_image: Sequence[Sequence[np.ndarray]],
    gt_masks: Sequence[np.ndarray],
    top_k: int = 5,
    min_iou: float = 0.1,
) -> RegionScores:
    """Region hits of the first `top_k` proposals of each image (proposals come best first).

    ``recall`` is the share of ground-truth components that at least one of the top-k proposals
    hits: the ceiling for a Set-of-Mark prompt that shows k marks. ``precision`` is the share of
    those proposals that hit anything.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    top = [list(p)[:top_k] for p in proposal_masks_per_image]
    return region_precision_recall(top, gt_masks, min_iou=min_iou)
