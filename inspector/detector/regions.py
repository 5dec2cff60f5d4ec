"""Candidate regions (boxes) from a calibrated heat map, for Set-of-Mark style marks.

The heat map is calibrated (0.5 = the detector's threshold), so regions are the blobs that
reach 0.5. Their extent is grown by hysteresis (as in Canny edge linking): a blob is the
connected area above ``extent * level`` (0.25) around a peak above 0.5. Without it the box
covered only the tip of a defect that pokes above the threshold (on a synthetic scratch, a
6 x 4 px box in the middle of a 60 px scratch once the heat map became sharper). A normal image
has no such blob; then the strongest blob (above 75 % of the peak) is still returned as a weak
candidate, so the operator and the VLM prompt can see where the detector looked hardest, with
its low score saying it is probably fine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inspector.localization.masks import encode_mask
from inspector.model import Region

MAX_REGIONS = 5


def heatmap_regions(
    heatmap: np.ndarray,
    max_regions: int = MAX_REGIONS,
    level: float = 0.5,
    min_area_frac: float = 0.0005,
    extent: float = 0.5,
) -> list[Region]:
    """Boxes (in heat-map pixels, x1/y1 exclusive) of the strongest blobs, strongest first.

    A blob above `level` extends over its connected surroundings above ``extent * level``.
    """
    if heatmap.size == 0:
        return []
    peak = float(heatmap.max())
    cut = level * extent if peak >= level else 0.75 * peak
    if peak <= 0.0:
        return []
    labels, n = ndimage.label(heatmap >= cut)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    peaks = ndimage.maximum(heatmap, labels, index)
    areas = ndimage.sum_labels(np.ones_like(heatmap, dtype=np.float32), labels, index)
    slices = ndimage.find_objects(labels)
    min_area = max(1.0, min_area_frac * heatmap.size)
    regions = []
    for label_id, (pk, area, sl) in enumerate(zip(peaks, areas, slices, strict=True), start=1):
        if sl is None or (area < min_area and pk < peak) or (peak >= level > pk):
            continue  # specks; and grown surroundings that never reach the threshold themselves
        ys, xs = sl
        above = pk >= level
        regions.append(
            Region(
                x0=float(xs.start),
                y0=float(ys.start),
                x1=float(xs.stop),
                y1=float(ys.stop),
                score=float(pk),
                label="anomaly candidate" if above else "weak candidate",
                reason=(
                    "feature deviation above the reference threshold"
                    if above
                    else "strongest deviation, below the reference threshold"
                ),
                # the blob itself, cropped to its box: the viewer fills the blob, not the rectangle
                detail={"mask": encode_mask(labels[sl] == label_id)},
            )
        )
    regions.sort(key=lambda r: r.score, reverse=True)
    return regions[:max_regions]
