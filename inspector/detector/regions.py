"""Candidate regions (boxes) from a calibrated heat map, for Set-of-Mark style marks.

The heat map is calibrated (0.5 = the detector's threshold), so regions are the connected
blobs above 0.5. A normal image has none; then the strongest blob (above 75 % of the peak) is
still returned as a weak candidate, so the operator and the VLM prompt can see where the
detector looked hardest, with its low score saying it is probably fine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inspector.model import Region

MAX_REGIONS = 5


def heatmap_regions(heatmap: np.ndarray, max_regions: int = MAX_REGIONS, level: float = 0.5,
                    min_area_frac: float = 0.0005) -> list[Region]:
    """Boxes (in heat-map pixels, x1/y1 exclusive) of the strongest blobs, strongest first."""
    if heatmap.size == 0:
        return []
    peak = float(heatmap.max())
    cut = level if peak >= level else 0.75 * peak
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
    for pk, area, sl in zip(peaks, areas, slices, strict=True):
        if sl is None or (area < min_area and pk < peak):
            continue
        ys, xs = sl
        above = pk >= level
        regions.append(Region(
            x0=float(xs.start), y0=float(ys.start), x1=float(xs.stop), y1=float(ys.stop),
            score=float(pk),
            label="anomaly candidate" if above else "weak candidate",
            reason=("feature deviation above the reference threshold" if above
                    else "strongest deviation, below the reference threshold"),
        ))
    regions.sort(key=lambda r: r.score, reverse=True)
    return regions[:max_regions]
