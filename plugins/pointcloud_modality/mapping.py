"""From depth views back to the cloud: view maps, and boxes on views -> point ids.

A box the model draws (or the detector proposes) covers pixels of one depth view; the pixels'
front-most points, read from the view's index image, are the region's points. Only what the view
shows is selected: points hidden behind the surface in that view are not. Region boxes are in
that view's own pixels (a tile's, not the montage's), and `detail` carries the view label, the
point count and the ids, capped at `MAX_POINT_IDS` (an even subsample; ``point_ids_truncated``
says so) to keep the stored verdict small.

A Set-of-Mark item carries its mark's mask over the box: then only the pixels inside the mask
select points (a mark on a rim is the rim, not the rectangle around it), and the region keeps the
mask (cut to the region box, in the view's pixels) and the mark number in `detail`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspector.locate import box_in_view, crop_mask, item_mask, mark_detail
from inspector.model import LoadedCase, Region, View, ViewMap
from inspector.plugins import QueryView

from .depthviews import Montage, RenderedView

MAX_POINT_IDS = 20_000
GRID_LABEL = "depth views"
GRID_KIND = "depth_grid"
VIEW_KIND = "depth_view"


def grid_view(mont: Montage, info: dict[str, Any]) -> View:
    tiles = [
        {"label": v.label, "camera": v.spec.to_record(), "rect": list(rect)}
        for v, rect in zip(mont.views, mont.rects, strict=True)
    ]
    params = {**info, "layout": "grid", "tiles": tiles, "montage_size": [mont.image.shape[1], mont.image.shape[0]]}
    return View(GRID_LABEL, mont.image, ViewMap(GRID_KIND, params, {"point_index": mont.index}))


def separate_views(views: list[RenderedView], info: dict[str, Any]) -> list[View]:
    return [
        View(
            v.label,
            v.image,
            ViewMap(
                VIEW_KIND,
                {**info, "layout": "separate", "label": v.label, "camera": v.spec.to_record()},
                {"point_index": v.index},
            ),
        )
        for v in views
    ]


def ids_in_box(index: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Sorted unique point ids of the pixels a box covers (pixel k spans [k, k+1))."""
    h, w = index.shape
    x0, y0, x1, y1 = box
    c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    if c1 <= c0 or r1 <= r0:
        return np.empty(0, np.int64)
    ids = index[r0:r1, c0:c1]
    return np.unique(ids[ids >= 0]).astype(np.int64)


def ids_in_mask(index: np.ndarray, box: tuple[float, float, float, float], mask: np.ndarray) -> np.ndarray:
    """Sorted unique point ids of the pixels whose centre lies in the box on a true mask cell.

    The mask is a grid over the box (any resolution: the sent image may be smaller than the view),
    so each index pixel is looked up by its centre; pixels outside the box never count.
    """
    h, w = index.shape
    x0, y0, x1, y1 = box
    mh, mw = mask.shape
    if mh == 0 or mw == 0 or x1 <= x0 or y1 <= y0:
        return np.empty(0, np.int64)
    cols = np.arange(max(0, int(np.floor(x0))), min(w, int(np.ceil(x1))))
    rows = np.arange(max(0, int(np.floor(y0))), min(h, int(np.ceil(y1))))
    cols = cols[(cols + 0.5 >= x0) & (cols + 0.5 < x1)]
    rows = rows[(rows + 0.5 >= y0) & (rows + 0.5 < y1)]
    if cols.size == 0 or rows.size == 0:
        return np.empty(0, np.int64)
    mc = np.clip(np.floor((cols + 0.5 - x0) * mw / (x1 - x0)).astype(np.int64), 0, mw - 1)
    mr = np.clip(np.floor((rows + 0.5 - y0) * mh / (y1 - y0)).astype(np.int64), 0, mh - 1)
    ids = index[np.ix_(rows, cols)]
    ids = ids[mask[np.ix_(mr, mc)] & (ids >= 0)]
    return np.unique(ids).astype(np.int64)


def capped(ids: np.ndarray) -> tuple[list[int], bool]:
    if ids.size <= MAX_POINT_IDS:
        return ids.tolist(), False
    pick = np.linspace(0, ids.size - 1, MAX_POINT_IDS).round().astype(np.int64)
    return ids[pick].tolist(), True


def region_for_box(
    view_map: ViewMap,
    box: tuple[float, float, float, float],
    score: float = 1.0,
    label: str = "",
    reason: str = "",
    prefer: str = "",
    mask: np.ndarray | None = None,
    mark: dict[str, Any] | None = None,
) -> Region | None:
    """A box in a depth view's (or the grid montage's) pixels -> Region in view pixels with point ids.

    `mask` (a grid over `box`) narrows the selection to the pixels inside it; `mark` holds the item
    whose mark number goes into the detail.
    """
    index = view_map.arrays.get("point_index")
    if index is None:
        return None
    x0, y0, x1, y1 = box
    if view_map.kind == GRID_KIND:
        tile = _pick_tile(view_map.params.get("tiles", []), box, prefer)
        if tile is None:
            return None
        tx, ty, tw, th = tile["rect"]
        clipped = (max(x0, tx), max(y0, ty), min(x1, tx + tw), min(y1, ty + th))
        if mask is not None and clipped != tuple(box):
            mask = crop_mask(mask, box, clipped) if clipped[2] > clipped[0] and clipped[3] > clipped[1] else None
        x0, y0, x1, y1 = clipped[0] - tx, clipped[1] - ty, clipped[2] - tx, clipped[3] - ty
        view_label = tile["label"]
        index = index[ty : ty + th, tx : tx + tw]
    elif view_map.kind == VIEW_KIND:
        view_label = view_map.params.get("label", "")
    else:
        return None
    if x1 - x0 < 0.5 or y1 - y0 < 0.5:
        return None
    ids = ids_in_box(index, (x0, y0, x1, y1)) if mask is None else ids_in_mask(index, (x0, y0, x1, y1), mask)
    listed, truncated = capped(ids)
    detail: dict[str, Any] = {"view": view_label, "points": int(ids.size), "point_ids": listed}
    if truncated:
        detail["point_ids_truncated"] = True
    detail.update(mark_detail(mark or {}, mask))
    return Region(float(x0), float(y0), float(x1), float(y1), score=score, label=label, reason=reason, detail=detail)


def _pick_tile(tiles: list[dict], box: tuple[float, float, float, float], prefer: str) -> dict | None:
    """The tile the box lies on: the named one if the box touches it, else the largest overlap."""
    best, best_area = None, 0.0
    for tile in tiles:
        tx, ty, tw, th = tile["rect"]
        area = max(0.0, min(box[2], tx + tw) - max(box[0], tx)) * max(0.0, min(box[3], ty + th) - max(box[1], ty))
        if area > 0 and prefer and tile["label"] == prefer:
            return tile
        if area > best_area:
            best, best_area = tile, area
    return best


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase | None) -> Region | None:
    """The plugin's `locate`: a box the model drew on a depth view (or the grid) -> Region with ids.

    The model may name the grid image ("depth views") or one of its tiles ("view 3"); either way
    the box is taken in the pixels of the image it was sent (the montage), as the prompt asks.
    """
    if "box" not in item and "bbox" not in item and not all(k in item for k in ("x0", "y0", "x1", "y1")):
        return None
    wanted = str(item.get("view", "")).strip()
    query = _query_for(wanted, queries)
    if query is None or query.view_map is None:
        return None
    found = box_in_view({**item, "view": query.image.label}, [query])
    if found is None:
        return None
    _, box = found
    tile_name = wanted.rsplit(":", 1)[-1].strip().lower() if wanted else ""
    return region_for_box(
        query.view_map,
        box,
        score=1.0,
        label=str(item.get("label", "")),
        reason=str(item.get("reason", "")),
        prefer=tile_name,
        mask=item_mask(item, query, box),
        mark=item,
    )


def _query_for(wanted: str, queries: list[QueryView]) -> QueryView | None:
    if wanted:
        for q in queries:
            if q.image.label == wanted or wanted.endswith(q.image.label):
                return q
        lowered = wanted.lower()
        for q in queries:  # a tile named on a grid ("view 3", "Image to inspect: view 3")
            tiles = q.view_map.params.get("tiles", []) if q.view_map is not None else []
            if any(lowered == t["label"] or lowered.endswith(": " + t["label"]) for t in tiles):
                return q
    return queries[0] if len(queries) == 1 else None
