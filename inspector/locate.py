"""Answer items -> places on the case: boxes on sent images back to view and case coordinates.

The model sees downscaled PNGs of the case's views. A box it returns is in those sent pixels; this
module picks the view it belongs to, scales it back to the view (`PromptImage.scale`) and, for
``pixel_scale`` views, through the view map to case pixels. Modalities with other maps (slices,
frame grids, plots, depth renders) call `box_in_view` and finish the mapping in their own `locate`.
Anything ambiguous or malformed is dropped rather than guessed.
"""

from __future__ import annotations

from typing import Any

from inspector.model import Region
from inspector.plugins import QueryView

Box = tuple[float, float, float, float]


def box_in_view(item: dict[str, Any], queries: list[QueryView]) -> tuple[QueryView, Box] | None:
    """The query view a box item refers to and the box in that view's pixels (clipped, ordered)."""
    box = item.get("box") or item.get("bbox")
    if box is None and all(k in item for k in ("x0", "y0", "x1", "y1")):
        box = [item["x0"], item["y0"], item["x1"], item["y1"]]
    try:
        x0, y0, x1, y1 = (float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    wanted = str(item.get("view", "")).strip()
    if wanted:
        query = next((q for q in queries if q.image.label == wanted), None)
        if query is None:  # models often echo the caption ("Image to inspect: slice 12")
            query = next((q for q in queries if wanted.endswith(q.image.label)), None)
    else:
        query = queries[0] if len(queries) == 1 else None  # unnamed boxes are unambiguous only with one view
    if query is None:
        return None
    image = query.image
    x0, x1 = sorted((max(0.0, min(x0, image.width)), max(0.0, min(x1, image.width))))
    y0, y1 = sorted((max(0.0, min(y0, image.height)), max(0.0, min(y1, image.height))))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    scale = image.scale or 1.0
    return query, (x0 / scale, y0 / scale, x1 / scale, y1 / scale)


def locate_box(item: dict[str, Any], queries: list[QueryView]) -> Region | None:
    """The default `locate`: a box on a ``pixel_scale`` view (or an unmapped view) in case pixels."""
    found = box_in_view(item, queries)
    if found is None:
        return None
    query, (x0, y0, x1, y1) = found
    view_map = query.view_map
    if view_map is not None and view_map.kind != "pixel_scale":
        return None  # the modality's own `locate` knows this map; without it, do not guess
    if view_map is not None:
        x0, y0 = view_map.view_to_case_xy(x0, y0)
        x1, y1 = view_map.view_to_case_xy(x1, y1)
    return Region(x0, y0, x1, y1, score=1.0, label=str(item.get("label", "")), reason=str(item.get("reason", "")))
