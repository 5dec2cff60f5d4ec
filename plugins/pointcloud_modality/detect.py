"""Offline detection for point clouds: the image detector on depth-render montages, mapped to points.

References are normal clouds the operator adds to the profile; each becomes one montage
(`reference_images` -> `offline_montage`) rendered exactly like a case: pose-normalised, the
first `OFFLINE_VIEWS` viewpoints at `OFFLINE_SIZE` px, shaded relief (`OFFLINE_SHADED`: on the
synthetic set of benchmarks/point_cloud.py relief gave image AUROC 1.00 against 0.89 for plain
depth, whose grey levels barely change over a dent). These are fixed, not profile options,
because the stored reference montages must match the case's. The built-in image detector, fitted
on those montages, scores the case's montage; its heat map goes back to the points through the
montage's index image (a point's score is the maximum over the pixels, in any view, where it is
the front-most point), and its candidate boxes become regions with point ids.

Localisation is coarse: the detector squeezes the whole 688 x 500 montage into 256-320 px
squares with a stride-32 feature grid, about 3 x 5 cells per view. Detection is not hurt by
that (see the benchmark), but the regions and hottest points are only roughly placed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspector.model import LoadedCase, Region
from inspector.plugins import OfflineContext, OfflineOutcome

from .depthviews import Montage, montage, render_views
from .mapping import grid_view, region_for_box

OFFLINE_VIEWS = 6
OFFLINE_SIZE = 224
OFFLINE_SHADED = True
TOP_POINTS = 2000


def offline_montage(loaded: LoadedCase) -> tuple[Montage, dict[str, Any]]:
    views, info = render_views(loaded.data, OFFLINE_VIEWS, OFFLINE_SIZE, shaded=OFFLINE_SHADED)
    return montage(views), info


def reference_images(loaded: LoadedCase) -> list[tuple[str, np.ndarray]]:
    name = str(loaded.metadata.get("name") or "cloud")
    return [(f"{name} depth views", offline_montage(loaded)[0].image)]


def point_scores(heat: np.ndarray, index: np.ndarray, n_points: int) -> np.ndarray:
    """Per-point score = max of the heat over the pixels where the point is front-most (NaN: unseen)."""
    scores = np.full(n_points, -1.0, dtype=np.float32)
    seen = index >= 0
    np.maximum.at(scores, index[seen], heat[seen].astype(np.float32))
    scores[scores < 0] = np.nan
    return scores


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    detector = context.image_detector()
    context.progress(0.5)
    mont, info = offline_montage(loaded)
    if context.is_cancelled():
        return OfflineOutcome(False, 0.0, "cancelled")
    context.progress(0.7)
    result = detector.score(mont.image)
    heat = np.asarray(result.heatmap, dtype=np.float32)
    context.progress(0.9)
    scores = point_scores(heat, mont.index, len(loaded.data))
    regions: list[Region] = []
    view_map = grid_view(mont, info).view_map
    for box in result.regions:
        region = region_for_box(
            view_map,
            (box.x0, box.y0, box.x1, box.y1),
            score=float(box.score),
            label=box.label or "deviation",
            reason=box.reason,
        )
        if region is not None and region.detail.get("points"):
            regions.append(region)
    per_view = []
    for view, (x, y, w, h) in zip(mont.views, mont.rects, strict=True):
        peak = round(float(heat[y : y + h, x : x + w].max()), 4)
        per_view.append({"view": view.label, "camera": view.spec.name, "max": peak})
    seen = np.flatnonzero(np.isfinite(scores))
    order = seen[np.argsort(-scores[seen], kind="stable")][:TOP_POINTS]
    flagged = np.flatnonzero(np.nan_to_num(scores, nan=0.0) >= 0.5)
    details = {
        "render": {
            "views": OFFLINE_VIEWS,
            "size": OFFLINE_SIZE,
            "layout": "grid",
            "shaded": OFFLINE_SHADED,
            "renderer": info["renderer"],
            "point_size": info["point_size"],
        },
        "per_view_max": per_view,
        "points_seen": int(seen.size),
        "points_flagged": int(flagged.size),
        "top_points": [[int(i), round(float(scores[i]), 4)] for i in order],  # hottest first
    }
    worst = max(per_view, key=lambda v: v["max"])
    explanation = (
        f"{result.explanation} Depth views: strongest in {worst['view']} ({worst['camera']}); "
        f"{flagged.size:,} of {seen.size:,} visible points above the threshold."
    )
    return OfflineOutcome(
        anomalous=bool(result.anomalous),
        score=float(result.score),
        explanation=explanation,
        regions=regions,
        heatmap=heat,
        details=details,
        summary=f"raw score {result.raw_score:.4f}, threshold {result.threshold:.4f}, {info['renderer']} renderer",
        model="EfficientNet-Lite0 patch kNN on depth renders (offline)",
    )
