"""Region proposals: candidate masks to number with Set-of-Mark marks.

Set-of-Mark prompting only works when the marks sit on sensible regions: the VLM can pick a
number, it cannot fix a bad outline. The methods here need no checkpoint:

- `SegmentProposals`: classical graph-based segmentation (Felzenszwalb) or SLIC superpixels. They
  give object-shaped outlines but know nothing about anomalies, so without a heat map they are
  ranked by a saliency score (colour contrast against a ring around the segment).
- `HeatmapProposals`: the offline detector's calibrated heat map cut at 0.5 into blobs. It knows
  where the anomaly is, but its outlines are blurry (the heat map is a low-resolution feature map).
- `HybridProposals`: both, ranked by the heat map: the detector proposes where to look, segments
  give the outlines (each heat blob is also "snapped" to the segments it mostly covers).
- `operator_proposals`: rectangles or masks the operator draws; they always come first.

SAM automatic masks live in `inspector.localization.sam` (they need a checkpoint the operator
provides). Every method returns proposals already refined by `refine_proposals` (area filter,
near-duplicate merging, count cap), best first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import ndimage

from inspector.localization.masks import Proposal, mask_bbox

log = logging.getLogger(__name__)

HEAT_LEVEL = 0.5  # the calibrated heat map's "anomalous" level (the detector's normal threshold)
WEAK_FRACTION = 0.75  # with nothing above HEAT_LEVEL, the peak blob above this fraction of the peak

DEFAULT_MIN_AREA_FRAC = 0.0005
DEFAULT_MAX_AREA_FRAC = 0.6
DEFAULT_MERGE_IOU = 0.7
DEFAULT_MAX_COUNT = 12

METHOD_NAMES = ("segments", "heatmap", "hybrid", "sam")


class ProposalCancelledError(Exception):
    """Raised by a proposal method whose `is_cancelled` callable said stop (the caller asked)."""


@runtime_checkable
class ProposalMethod(Protocol):
    """What the localization pipeline calls; a method holds its own parameters and refine settings."""

    name: str
    needs_heatmap: bool
    refine: RefineParams

    def propose(self, image: np.ndarray, heatmap: np.ndarray | None = None) -> list[Proposal]:
        """Refined proposals in `image` pixels, best first.

        `image` is uint8 RGB (H, W, 3) or gray (H, W); `heatmap` is float (H, W) in 0..1, calibrated
        so 0.5 is the offline detector's normal threshold.
        """
        ...


@dataclass(frozen=True)
class RefineParams:
    """The `refine_proposals` keywords, held by each method so settings travel in one piece."""

    min_area_frac: float = DEFAULT_MIN_AREA_FRAC
    max_area_frac: float = DEFAULT_MAX_AREA_FRAC
    merge_iou: float = DEFAULT_MERGE_IOU
    max_count: int = DEFAULT_MAX_COUNT

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_area_frac <= 1.0 or not 0.0 < self.max_area_frac <= 1.0:
            raise ValueError("min_area_frac and max_area_frac are fractions of the image area (0..1)")
        if self.min_area_frac > self.max_area_frac:
            raise ValueError(f"min_area_frac {self.min_area_frac} is above max_area_frac {self.max_area_frac}")
        if not 0.0 < self.merge_iou <= 1.0:
            raise ValueError(f"merge_iou is an IoU in (0, 1], got {self.merge_iou}")
        if self.max_count < 1:
            raise ValueError(f"max_count (max_marks) must be at least 1, got {self.max_count}")

    def apply(self, proposals: Sequence[Proposal], shape: tuple[int, int]) -> list[Proposal]:
        """`refine_proposals` with these parameters."""
        return refine_proposals(
            proposals,
            shape,
            min_area_frac=self.min_area_frac,
            max_area_frac=self.max_area_frac,
            merge_iou=self.merge_iou,
            max_count=self.max_count,
        )


# --------------------------------------------------------------------------- input helpers


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) from gray, RGB or RGBA input; other dtypes are scaled to 0..255."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"an image is (H, W) gray or (H, W, 3) RGB, got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        f = arr.astype(np.float64)
        top = float(f.max()) if f.size else 0.0
        if np.issubdtype(arr.dtype, np.floating) and top <= 1.0:
            f = f * 255.0  # float images in 0..1
        elif top > 255.0:
            f = f * (255.0 / top)  # e.g. 16-bit: stretch rather than clip
        arr = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _image_shape(image: np.ndarray) -> tuple[int, int]:
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"an image is a non-empty (H, W) or (H, W, C) array, got shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


def fit_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The heat map as float32 (H, W) in the image's pixels.

    Heat maps should already be in image pixels; one at another resolution (a detector's feature
    grid) is resized bilinearly rather than rejected, since both cover the same field of view.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"a heat map is a non-empty 2-D array, got shape {h.shape}")
    if h.shape != tuple(shape):
        zoom = (shape[0] / h.shape[0], shape[1] / h.shape[1])
        h = ndimage.zoom(h, zoom, order=1, mode="nearest", grid_mode=True)
        h = h[: shape[0], : shape[1]]
        if h.shape != tuple(shape):  # zoom rounding: pad with edge values
            h = np.pad(h, ((0, shape[0] - h.shape[0]), (0, shape[1] - h.shape[1])), mode="edge")
    return np.nan_to_num(h, nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32, copy=False)


def _check_masks(proposals: Iterable[Proposal], shape: tuple[int, int]) -> None:
    for p in proposals:
        if p.mask.shape != tuple(shape):
            raise ValueError(f"a {p.source or 'proposal'} mask has shape {p.mask.shape}, the image is {tuple(shape)}")


# --------------------------------------------------------------------------- IoU, refine, rank


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (0.0 when both are empty)."""
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a | b))
    return inter / union if union else 0.0


class _MaskIndex:
    """IoU against a growing set of masks, computed on bounding-box crops.

    Felzenszwalb gives a few hundred candidates on a large image; comparing full-size masks pairwise
    would dominate the run time, and almost all pairs are rejected by their boxes or areas.
    """

    def __init__(self) -> None:
        self.masks: list[np.ndarray] = []
        self.boxes: list[tuple[int, int, int, int]] = []
        self.areas: list[int] = []

    def add(self, mask: np.ndarray, box: tuple[int, int, int, int], area: int) -> None:
        self.masks.append(mask)
        self.boxes.append(box)
        self.areas.append(area)

    def max_iou(self, mask: np.ndarray, box: tuple[int, int, int, int], area: int, at_least: float) -> float:
        """The largest IoU with an indexed mask that could reach `at_least` (0.0 if none can)."""
        best = 0.0
        x0, y0, x1, y1 = box
        for other, (a0, b0, a1, b1), other_area in zip(self.masks, self.boxes, self.areas, strict=True):
            if min(area, other_area) < at_least * max(area, other_area):
                continue  # IoU <= small / large
            ix0, iy0, ix1, iy1 = max(x0, a0), max(y0, b0), min(x1, a1), min(y1, b1)
            if ix0 >= ix1 or iy0 >= iy1:
                continue
            inter = int(np.count_nonzero(mask[iy0:iy1, ix0:ix1] & other[iy0:iy1, ix0:ix1]))
            iou = inter / (area + other_area - inter)
            best = max(best, iou)
        return best


def refine_proposals(
    proposals: Sequence[Proposal],
    shape: tuple[int, int],
    *,
    min_area_frac: float = DEFAULT_MIN_AREA_FRAC,
    max_area_frac: float = DEFAULT_MAX_AREA_FRAC,
    merge_iou: float = DEFAULT_MERGE_IOU,
    max_count: int = DEFAULT_MAX_COUNT,
) -> list[Proposal]:
    """Filter by area, drop near-duplicates, cap the count; best first.

    * Operator proposals (source "operator") come first, in the order given, and are never filtered
      by area, merged away or capped: the operator asked about exactly those regions. They count
      towards `max_count`; automatic proposals fill the remaining slots (none if the operator drew
      `max_count` or more).
    * Automatic proposals are ordered by score (stable, so ties keep their input order), then a
      proposal smaller than `min_area_frac` or larger than `max_area_frac` of the image is dropped
      (at least 1 pixel: empty masks are always dropped, operator ones included, since an empty
      region cannot be marked).
    * Near-duplicates (IoU >= `merge_iou` with an already kept proposal, operator ones included)
      are dropped rather than unioned: the kept one scored at least as high, and a union of two
      outlines is an outline nobody proposed. Hybrid proposals do their own snapping first.
    """
    shape = (int(shape[0]), int(shape[1]))
    _check_masks(proposals, shape)
    total = shape[0] * shape[1]
    min_area = max(1, int(np.ceil(min_area_frac * total)))
    max_area = max_area_frac * total

    index = _MaskIndex()
    kept: list[Proposal] = []
    for p in proposals:
        if p.source != "operator":
            continue
        mask = np.asarray(p.mask, dtype=bool)
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        kept.append(p)
        index.add(mask, mask_bbox(mask), area)

    automatic = [p for p in proposals if p.source != "operator"]
    automatic.sort(key=lambda p: -float(p.score))  # list.sort is stable
    for p in automatic:
        if len(kept) >= max_count:
            break
        mask = np.asarray(p.mask, dtype=bool)
        area = int(np.count_nonzero(mask))
        if area < min_area or area > max_area:
            continue
        box = mask_bbox(mask)
        if index.max_iou(mask, box, area, merge_iou) >= merge_iou:
            continue
        kept.append(p)
        index.add(mask, box, area)
    return kept


def heat_score(mask: np.ndarray, heatmap: np.ndarray, stat: str = "mean") -> float:
    """How hot a region is: the mean heat inside it (or "max", or "p90" = 90th percentile).

    The mean is the default because it prefers regions that are hot throughout: a large segment
    that merely contains a hot spot scores low, the segment that outlines the hot spot scores high.
    """
    values = heatmap[mask]
    if values.size == 0:
        return 0.0
    if stat == "mean":
        return float(values.mean())
    if stat == "max":
        return float(values.max())
    if stat == "p90":
        return float(np.percentile(values, 90))
    raise ValueError(f"unknown heat statistic {stat!r}: use 'mean', 'max' or 'p90'")


def rank_by_heatmap(proposals: Sequence[Proposal], heatmap: np.ndarray, *, stat: str = "mean") -> list[Proposal]:
    """New proposals scored by `heat_score` and ordered hottest first (operator ones still first).

    The sort is stable, so proposals with equal heat keep their previous order (e.g. saliency).
    The originals are not modified.
    """
    if not proposals:
        return []
    shape = proposals[0].mask.shape
    heat = fit_heatmap(heatmap, shape)
    _check_masks(proposals, shape)
    scored = [
        Proposal(mask=p.mask, score=heat_score(p.mask, heat, stat), source=p.source, label=p.label) for p in proposals
    ]
    operators = [p for p in scored if p.source == "operator"]
    others = [p for p in scored if p.source != "operator"]
    others.sort(key=lambda p: -p.score)
    return operators + others


# --------------------------------------------------------------------------- operator regions


def operator_proposals(boxes_or_masks: Iterable[Any], shape: tuple[int, int]) -> list[Proposal]:
    """Proposals for regions the operator drew: (x0, y0, x1, y1) boxes in image pixels or bool masks.

    Boxes are clipped to the image (x1/y1 exclusive, fractional edges rounded outwards so a thin
    box still covers the pixels it touches, reversed corners accepted); masks must have the image's
    shape. Regions empty after clipping are skipped. Score 1.0, source "operator", labelled
    "operator region N" in drawing order.
    """
    h, w = int(shape[0]), int(shape[1])
    out: list[Proposal] = []
    for item in boxes_or_masks:
        arr = np.asarray(item)
        if arr.ndim == 2:
            if arr.shape != (h, w):
                raise ValueError(f"an operator mask has shape {arr.shape}, the image is {(h, w)}")
            mask = arr.astype(bool)
        elif arr.shape == (4,):
            x0, y0, x1, y1 = (float(v) for v in arr)
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            c0, c1 = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)))
            r0, r1 = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)))
            mask = np.zeros((h, w), dtype=bool)
            if c0 < c1 and r0 < r1:
                mask[r0:r1, c0:c1] = True
        else:
            raise ValueError(f"an operator region is a 4-number box or an (H, W) mask, got shape {arr.shape}")
        if not mask.any():
            continue
        out.append(Proposal(mask=mask, score=1.0, source="operator", label=f"operator region {len(out) + 1}"))
    return out


# --------------------------------------------------------------------------- heat-map blobs


def _heat_blobs(heat: np.ndarray, level: float, weak_fraction: float, min_area_frac: float) -> list[Proposal]:
    """Connected blobs of the heat map at `level` (see `HeatmapProposals`), strongest first."""
    peak = float(heat.max())
    if peak <= 0.0:
        return []
    above = peak >= level
    labels, n = ndimage.label(heat >= (level if above else weak_fraction * peak))
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    peaks = np.asarray(ndimage.maximum(heat, labels, index), dtype=np.float64)
    if not above:
        # nothing crosses the threshold: only the blob holding the peak, as a weak candidate
        best = int(np.argmax(peaks))
        return [Proposal(mask=labels == best + 1, score=float(peaks[best]), source="heatmap", label="weak candidate")]
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    min_area = max(1.0, min_area_frac * heat.size)
    out = []
    for i in np.argsort(-peaks, kind="stable"):
        # a blob holding the global peak is kept even when tiny, like `heatmap_regions`
        if areas[i] < min_area and peaks[i] < peak:
            continue
        out.append(Proposal(mask=labels == i + 1, score=float(peaks[i]), source="heatmap", label="anomaly candidate"))
    return out


class HeatmapProposals:
    """The calibrated heat map cut into connected blobs: score = the blob's peak heat.

    Blobs are the 4-connected components at `level` (0.5, the detector's threshold). A normal
    image has none; then the single blob above 75 % of the peak is returned as a "weak candidate"
    (low score) so the operator and the VLM still see where the detector looked hardest — the same
    rule as `inspector.detector.regions.heatmap_regions`, but with masks instead of boxes.
    """

    name = "heatmap"
    needs_heatmap = True

    def __init__(
        self, *, level: float = HEAT_LEVEL, weak_fraction: float = WEAK_FRACTION, refine: RefineParams | None = None
    ) -> None:
        self.level = float(level)
        self.weak_fraction = float(weak_fraction)
        self.refine = refine or RefineParams()

    def propose(self, image: np.ndarray, heatmap: np.ndarray | None = None) -> list[Proposal]:
        """Heat blobs in image pixels, strongest first; ValueError without a heat map."""
        if heatmap is None:
            raise ValueError("heat-map proposals need the offline detector's heat map")
        shape = _image_shape(image)
        heat = fit_heatmap(heatmap, shape)
        blobs = _heat_blobs(heat, self.level, self.weak_fraction, self.refine.min_area_frac)
        # the area filter was applied above (with the peak-blob exception); refine merges and caps
        return refine_proposals(
            blobs,
            shape,
            min_area_frac=0.0,
            max_area_frac=1.0,
            merge_iou=self.refine.merge_iou,
            max_count=self.refine.max_count,
        )


# --------------------------------------------------------------------------- classical segments


def saliency_scores(image_rgb: np.ndarray, labels: np.ndarray, ids: Sequence[int], ring: int) -> np.ndarray:
    """Saliency of each segment: colour contrast against the ring of pixels around it, 0..1.

    Contrast is the CIELAB distance (ΔE, roughly "just noticeable" at 2.3) between the segment's
    mean colour and the mean colour of the `ring`-pixel band outside it, mapped to 0..1 by
    1 - exp(-ΔE / 20) so that a clearly different patch (ΔE 40) scores ~0.86 whatever the other
    segments look like. Two discounts follow. Thin segments (inscribed radius r below the ring
    width) are multiplied by sqrt(r / ring): graph segmentation turns the blurred edge of an object
    into a thin band whose colour differs from everything around it, and a band is a useless mark.
    Segments touching the image border score half: they are usually background or cut-off parts,
    and the border ring is one-sided.
    """
    from skimage.color import rgb2lab

    lab = rgb2lab(image_rgb).astype(np.float32)
    h, w = labels.shape
    objects = ndimage.find_objects(labels)
    structure = ndimage.generate_binary_structure(2, 1)
    scores = np.zeros(len(ids), dtype=np.float64)
    for k, seg in enumerate(ids):
        sl = objects[seg - 1]
        if sl is None:
            continue
        ys, xs = sl
        r0, r1 = max(0, ys.start - ring), min(h, ys.stop + ring)
        c0, c1 = max(0, xs.start - ring), min(w, xs.stop + ring)
        inside = labels[r0:r1, c0:c1] == seg
        band = ndimage.binary_dilation(inside, structure, iterations=ring) & ~inside
        if not band.any():
            continue
        crop = lab[r0:r1, c0:c1]
        delta = float(np.linalg.norm(crop[inside].mean(axis=0) - crop[band].mean(axis=0)))
        score = 1.0 - np.exp(-delta / 20.0)
        radius = float(ndimage.distance_transform_edt(np.pad(inside, 1)).max())
        score *= min(1.0, radius / ring) ** 0.5
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            score *= 0.5
        scores[k] = score
    return scores


class SegmentProposals:
    """Classical segments (no checkpoint): Felzenszwalb's graph segmentation or SLIC superpixels.

    Segmentation runs on a copy downscaled so its longer side is at most `work_side` pixels
    (Felzenszwalb is roughly linear but a 4000-px photograph still takes seconds), and the label
    image is upsampled back by nearest neighbour, so outlines are as coarse as the working copy.
    `min_size` (Felzenszwalb) is in working-copy pixels. Segments are ranked by mean heat when a
    heat map is given, otherwise by `saliency_scores`.
    """

    name = "segments"
    needs_heatmap = False

    def __init__(
        self,
        *,
        mode: str = "felzenszwalb",
        scale: float = 300.0,
        sigma: float = 0.5,
        min_size: int = 50,
        n_segments: int = 100,
        compactness: float = 10.0,
        work_side: int = 384,
        refine: RefineParams | None = None,
    ) -> None:
        if mode not in ("felzenszwalb", "slic"):
            raise ValueError(f"unknown segmentation mode {mode!r}: use 'felzenszwalb' or 'slic'")
        if scale <= 0 or sigma < 0 or min_size < 1 or n_segments < 1 or compactness <= 0 or work_side < 16:
            raise ValueError(
                "segment parameters out of range (scale > 0, sigma >= 0, min_size >= 1, "
                "n_segments >= 1, compactness > 0, work_side >= 16)"
            )
        self.mode = mode
        self.scale = float(scale)
        self.sigma = float(sigma)
        self.min_size = int(min_size)
        self.n_segments = int(n_segments)
        self.compactness = float(compactness)
        self.work_side = int(work_side)
        self.refine = refine or RefineParams()

    def label_image(self, image: np.ndarray) -> np.ndarray:
        """Segment ids (int32, 1..n, no zeros) in the image's full-resolution pixels."""
        from skimage.segmentation import felzenszwalb, slic

        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        factor = min(1.0, self.work_side / max(h, w))
        small = rgb
        if factor < 1.0:
            from skimage.transform import resize

            sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
            small = (resize(rgb, (sh, sw), order=1, anti_aliasing=True, preserve_range=True) + 0.5).astype(np.uint8)
        if self.mode == "felzenszwalb":
            labels = felzenszwalb(small, scale=self.scale, sigma=self.sigma, min_size=self.min_size)
        else:
            labels = slic(
                small,
                n_segments=self.n_segments,
                compactness=self.compactness,
                sigma=self.sigma,
                start_label=0,
                channel_axis=2,
            )
        labels = labels.astype(np.int32) + 1
        if labels.shape != (h, w):
            ys = np.minimum((np.arange(h) + 0.5) * labels.shape[0] / h, labels.shape[0] - 1).astype(np.int64)
            xs = np.minimum((np.arange(w) + 0.5) * labels.shape[1] / w, labels.shape[1] - 1).astype(np.int64)
            labels = labels[ys[:, None], xs[None, :]]
        return labels

    def candidates(self, image: np.ndarray, labels: np.ndarray | None = None) -> list[Proposal]:
        """All segments inside the area limits, each scored by saliency, most salient first (unrefined)."""
        rgb = as_rgb(image)
        if labels is None:
            labels = self.label_image(rgb)
        h, w = labels.shape
        counts = np.bincount(labels.ravel())
        lo = max(1, int(np.ceil(self.refine.min_area_frac * h * w)))
        hi = self.refine.max_area_frac * h * w
        ids = [int(i) for i in np.flatnonzero((counts >= lo) & (counts <= hi)) if i > 0]
        if not ids:
            return []
        # the ring scales with the image so "surroundings" means the same on 256 and 4000 px
        ring = max(2, round(0.02 * max(h, w)))
        scores = saliency_scores(rgb, labels, ids, ring)
        order = np.argsort(-scores, kind="stable")
        return [
            Proposal(mask=labels == ids[k], score=float(scores[k]), source="segments", label="segment") for k in order
        ]

    def propose(self, image: np.ndarray, heatmap: np.ndarray | None = None) -> list[Proposal]:
        """Refined segments, by heat when a heat map is given, else by saliency."""
        shape = _image_shape(image)
        found = self.candidates(image)
        if heatmap is not None:
            found = rank_by_heatmap(found, heatmap)
        return self.refine.apply(found, shape)


# --------------------------------------------------------------------------- hybrid


def snap_to_segments(
    blob: np.ndarray, labels: np.ndarray, min_cover: float = 0.5, min_share: float = 0.25
) -> np.ndarray:
    """The blob's outline snapped to segments: an object-shaped mask for a blurry blob (maybe empty).

    The union of (a) the segments lying at least `min_cover` inside the blob (the object parts it
    covers) and (b) a segment holding at least `min_cover` of the blob when the blob is at least
    `min_share` of it (the object a blob smaller than the object sits on; a scratch on a large
    surface is too small a share of it, so the surface is not taken).
    """
    blob_area = int(np.count_nonzero(blob))
    if blob_area == 0:
        return np.zeros_like(blob, dtype=bool)
    ids, inside = np.unique(labels[blob], return_counts=True)
    totals = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)[ids]
    parts = inside >= min_cover * totals
    holder = (inside >= min_cover * blob_area) & (inside >= min_share * totals)
    chosen = ids[parts | holder]
    if chosen.size == 0:
        return np.zeros_like(blob, dtype=bool)
    return np.isin(labels, chosen)


class HybridProposals:
    """Heat-map blobs and classical segments together, ranked by the heat map.

    The offline detector says which regions are worth asking about, segments give them object
    outlines. Candidates are: every heat blob snapped to the segments it mostly covers (source
    "hybrid"), the raw blobs, and all segments; all are scored by mean heat (`rank_by_heatmap`),
    a snapped blob at least as high as its raw blob, then refined. Snapped blobs come first among
    equals, so when a snapped blob and its raw blob are near-duplicates the object-shaped outline
    stands. Without a heat map it is just `SegmentProposals`.
    """

    name = "hybrid"
    needs_heatmap = True

    def __init__(
        self,
        *,
        segments: SegmentProposals | None = None,
        heatmap: HeatmapProposals | None = None,
        refine: RefineParams | None = None,
    ) -> None:
        self.refine = refine or RefineParams()
        self.segments = segments or SegmentProposals(refine=self.refine)
        self.heatmap = heatmap or HeatmapProposals(refine=self.refine)

    def propose(self, image: np.ndarray, heatmap: np.ndarray | None = None) -> list[Proposal]:
        """Refined hybrid proposals, hottest first."""
        shape = _image_shape(image)
        if heatmap is None:
            log.info("hybrid proposals without a heat map: using segments alone")
            return self.refine.apply(self.segments.candidates(image), shape)
        heat = fit_heatmap(heatmap, shape)
        labels = self.segments.label_image(image)
        blobs = _heat_blobs(heat, self.heatmap.level, self.heatmap.weak_fraction, self.refine.min_area_frac)
        snapped = []
        for blob in blobs:
            mask = snap_to_segments(blob.mask, labels)
            if mask.any():
                # A snapped outline inherits its blob's heat: the blob holds only the pixels above the
                # level, so its mean heat is always higher and would otherwise win every merge.
                score = max(heat_score(mask, heat), heat_score(blob.mask, heat))
                snapped.append(Proposal(mask=mask, score=score, source="hybrid", label=blob.label))
        others = rank_by_heatmap(blobs + self.segments.candidates(image, labels), heat)
        # snapped first, then a stable sort: on equal heat the object-shaped outline comes first
        ranked = sorted(snapped + others, key=lambda p: -p.score)
        return self.refine.apply(ranked, shape)


# --------------------------------------------------------------------------- registry and settings


def proposal_methods(heatmap_available: bool) -> dict[str, ProposalMethod]:
    """The methods that run here without a checkpoint, with default parameters, by settings name."""
    methods: dict[str, ProposalMethod] = {"segments": SegmentProposals()}
    if heatmap_available:
        methods["heatmap"] = HeatmapProposals()
        methods["hybrid"] = HybridProposals()
    return methods


_SEGMENT_KEYS = {
    "mode": str,
    "scale": float,
    "sigma": float,
    "min_size": int,
    "n_segments": int,
    "compactness": float,
    "work_side": int,
}
_SAM_KEYS = {
    "points_per_side": int,
    "points_per_batch": int,
    "pred_iou_thresh": float,
    "stability_score_thresh": float,
    "crop_n_layers": int,
    "min_mask_region_area": int,
    "box_nms_thresh": float,
}


def _typed(section: dict[str, Any], keys: dict[str, type], where: str) -> dict[str, Any]:
    """The known keys of a settings section converted to their types; ValueError names a bad one."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        kind = keys.get(key)
        if kind is None:
            log.warning("proposal settings: ignoring unknown key %s.%s", where, key)
            continue
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"proposal settings: {where}.{key} should be {kind.__name__}, got {value!r}") from None
    return out


def make_proposer(settings: dict[str, Any]) -> ProposalMethod:
    """The proposal method a settings dict asks for.

    ``{"method": "segments" | "heatmap" | "hybrid" | "sam", "max_marks": 12, "min_area_frac": ...,
    "max_area_frac": ..., "merge_iou": ..., "segments": {mode, scale, sigma, min_size, n_segments,
    compactness, work_side}, "sam": {"model_type", "checkpoint", points_per_side, ...}}``.
    Missing keys take defaults. An unknown method or a bad value raises ValueError; "sam" without a
    usable checkpoint raises `SamUnavailableError` (its message tells the operator what to do).
    """
    method = str(settings.get("method", "segments")).strip().lower()
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown proposal method {settings.get('method')!r}: use one of {', '.join(METHOD_NAMES)}")
    top = _typed(
        {k: settings[k] for k in ("max_marks", "min_area_frac", "max_area_frac", "merge_iou") if k in settings},
        {"max_marks": int, "min_area_frac": float, "max_area_frac": float, "merge_iou": float},
        "proposals",
    )
    refine = RefineParams(
        min_area_frac=top.get("min_area_frac", DEFAULT_MIN_AREA_FRAC),
        max_area_frac=top.get("max_area_frac", DEFAULT_MAX_AREA_FRAC),
        merge_iou=top.get("merge_iou", DEFAULT_MERGE_IOU),
        max_count=top.get("max_marks", DEFAULT_MAX_COUNT),
    )
    seg_params = _typed(dict(settings.get("segments") or {}), _SEGMENT_KEYS, "segments")
    if method == "segments":
        return SegmentProposals(refine=refine, **seg_params)
    if method == "heatmap":
        return HeatmapProposals(refine=refine)
    if method == "hybrid":
        return HybridProposals(segments=SegmentProposals(refine=refine, **seg_params), refine=refine)

    from inspector.localization.sam import SamProposals, SamUnavailableError, checkpoint_help, load_sam

    sam_settings = dict(settings.get("sam") or {})
    model_type = str(sam_settings.pop("model_type", "vit_b") or "vit_b")
    checkpoint = str(sam_settings.pop("checkpoint", "") or "").strip()
    if not checkpoint:
        raise SamUnavailableError("No SAM checkpoint is set. " + checkpoint_help(model_type))
    amg = _typed(sam_settings, _SAM_KEYS, "sam")
    return SamProposals(load_sam(model_type, checkpoint), refine=refine, **amg)
