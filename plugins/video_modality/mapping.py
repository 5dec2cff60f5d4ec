"""Answer items -> places in the video: frame ranges, and boxes on grid tiles or sequence frames.

Frame numbers in answers are the numbers printed on the tiles (0-based, the viewer's numbers).
A range outside the video is dropped, a range that overlaps it is clipped. A box names its tile
("view": "frame 60", as the surveillance preset asks) or is placed by where it lies on the
grid; it becomes a box in that frame's pixels with detail ``{"frames": [60, 60]}``. Anything that
cannot be placed without guessing (a box across two tiles with no tile named) is dropped.

A Set-of-Mark item also carries its mark's mask (cropped to its box) and number: the region keeps
them (``detail["mask"]``, ``detail["mark"]``) when the box lies on one tile, the mask cut as the
box is cut to the frame; a box that spills onto a neighbour tile keeps only its box, since part of
its mask would be another frame's pixels.
"""

from __future__ import annotations

import re
from typing import Any

from inspector.locate import box_in_view, crop_mask, item_mask, mark_detail
from inspector.model import LoadedCase, Region
from inspector.plugins import QueryView

FRAME_UNITS = ("frames", "frame_ranges", "ranges", "anomalous_ranges", "intervals")
TIME_UNITS = ("time_ranges",)
_FRAME_NAME = re.compile(r"frame\s*#?\s*(\d+)\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*(?:frame\s*#?\s*)?(-?\d+(?:\.\d+)?)\s*(s|sec|seconds)?\s*$", re.IGNORECASE)


def _frame_count(loaded: LoadedCase | None, queries: list[QueryView]) -> tuple[int, float] | None:
    if loaded is not None and hasattr(loaded.data, "frame_count"):
        return int(loaded.data.frame_count), float(loaded.data.fps)
    for query in queries:
        params = query.view_map.params if query.view_map is not None else {}
        if "frame_count" in params:
            return int(params["frame_count"]), float(params.get("fps") or 25.0)
    return None


def _end_value(value: Any, fps: float, seconds: bool) -> float | None:
    """A range end as a frame number (numbers, "frame 12", "12", "3.5 s" for time units)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number, is_time = float(value), seconds
    elif isinstance(value, str):
        match = _NUMBER.match(value)
        if match is None:
            return None
        number, is_time = float(match.group(1)), seconds or bool(match.group(2))
    else:
        return None
    return number * fps if is_time else number


def locate_range(item: dict[str, Any], count: int, fps: float) -> Region | None:
    unit = str(item.get("unit", "frames"))
    if unit not in FRAME_UNITS + TIME_UNITS:
        return None
    raw = item.get("range")
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        return None
    ends = [_end_value(v, fps, unit in TIME_UNITS) for v in raw]
    if None in ends:
        return None
    a, b = sorted(ends)  # type: ignore[type-var]
    first, last = round(a), round(b)
    if last < 0 or first > count - 1:
        return None  # entirely outside the video: the model misread the numbers
    first, last = max(0, first), min(count - 1, last)
    reason = str(item.get("reason", ""))
    return Region(
        0.0,
        0.0,
        0.0,
        0.0,
        score=1.0,
        label=str(item.get("label") or "anomalous frames"),
        reason=reason,
        detail={"frames": [first, last]},
    )


def _tiles(query: QueryView) -> list[dict[str, Any]]:
    if query.view_map is None or query.view_map.kind not in ("frame_grid", "frame"):
        return []
    return list(query.view_map.params.get("tiles") or [])


def _tile_for_frame(queries: list[QueryView], frame: int) -> tuple[QueryView, dict[str, Any]] | None:
    for query in queries:
        for tile in _tiles(query):
            if int(tile["frame"]) == frame:
                return query, tile
    return None


def _overlap(box: tuple[float, float, float, float], tile: dict[str, Any]) -> float:
    x0, y0, x1, y1 = box
    w = min(x1, tile["x"] + tile["w"]) - max(x0, tile["x"])
    h = min(y1, tile["y"] + tile["h"]) - max(y0, tile["y"])
    return max(0.0, w) * max(0.0, h)


def locate_box(item: dict[str, Any], queries: list[QueryView]) -> Region | None:
    """A box on a tile (grid or sequence view) as a box in that frame's pixels."""
    view = str(item.get("view", "")).strip()
    named = _FRAME_NAME.search(view) if view else None
    target = _tile_for_frame(queries, int(named.group(1))) if named else None
    if named and target is None:
        return None  # a tile the model was not shown
    if target is not None:
        query = target[0]
        found = box_in_view({**item, "view": query.image.label}, [query])
    else:
        found = box_in_view(item, queries)
    if found is None:
        return None
    query, box = found
    mask = item_mask(item, query, box)
    tiles = _tiles(query)
    if not tiles:
        return None
    if target is not None:
        tile = target[1]
        if _overlap(box, tile) < 0.5 * (box[2] - box[0]) * (box[3] - box[1]):
            x0, y0, x1, y1 = box  # not on the named tile: read it as relative to that tile
            if x1 > tile["w"] + 1 or y1 > tile["h"] + 1:
                return None
            box = (x0 + tile["x"], y0 + tile["y"], x1 + tile["x"], y1 + tile["y"])
    else:
        ranked = sorted(tiles, key=lambda t: _overlap(box, t), reverse=True)
        area = (box[2] - box[0]) * (box[3] - box[1])
        if _overlap(box, ranked[0]) < 0.5 * area:
            return None  # across tiles or on a label: not placeable
        tile = ranked[0]
    frame_w, frame_h = query.view_map.params["frame_size"]  # type: ignore[union-attr]
    sx, sy = frame_w / tile["w"], frame_h / tile["h"]
    on_frame = (
        (box[0] - tile["x"]) * sx,
        (box[1] - tile["y"]) * sy,
        (box[2] - tile["x"]) * sx,
        (box[3] - tile["y"]) * sy,
    )
    x0, y0 = max(0.0, on_frame[0]), max(0.0, on_frame[1])
    x1, y1 = min(float(frame_w), on_frame[2]), min(float(frame_h), on_frame[3])
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    if mask is not None:
        mask = crop_mask(mask, on_frame, (x0, y0, x1, y1)) if _within(box, tile) else None
    frame = int(tile["frame"])
    return Region(
        x0,
        y0,
        x1,
        y1,
        score=1.0,
        label=str(item.get("label", "")),
        reason=str(item.get("reason", "")),
        detail={"frames": [frame, frame], **mark_detail(item, mask)},
    )


def _within(box: tuple[float, float, float, float], tile: dict[str, Any], slack: float = 1.0) -> bool:
    """The box lies on the tile (within `slack` view pixels: mark boxes are rounded to whole pixels)."""
    return (
        box[0] >= tile["x"] - slack
        and box[1] >= tile["y"] - slack
        and box[2] <= tile["x"] + tile["w"] + slack
        and box[3] <= tile["y"] + tile["h"] + slack
    )


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase | None) -> Region | None:
    """The plugin's `locate` hook: ranges and boxes of an answer in video terms, or None."""
    if "range" in item:
        found = _frame_count(loaded, queries)
        return locate_range(item, *found) if found else None
    if any(k in item for k in ("box", "bbox", "x0")):
        return locate_box(item, queries)
    return None
