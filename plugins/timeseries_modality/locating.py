"""Answer items -> sample ranges: ranges in the plot's axis units, or boxes drawn on a plot.

The model is asked for ranges "in the units of the x axis as printed": timestamps for a time axis
(ISO text in any common form, or epoch seconds/milliseconds), sample indices for an index axis,
plain numbers for a numeric time column. A box on a plot image is mapped through its view's x
extent (pixel -> axis value, linear between the plot edges) and, by its vertical centre, to the
column panel it was drawn on. Results are clipped to what the model was shown; items outside it,
unreadable or inverted beyond repair give None (never a guess).

A Set-of-Mark item's mask narrows its box: the columns the mask covers give the range (a mark
box is the mask's bounding box, but a box cut by the plot edge keeps margin columns the mask does
not have), the rows it covers pick the panel. The mark number goes into ``detail["mark"]``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from inspector.locate import box_in_view, item_mask, mark_number
from inspector.model import Region
from inspector.plugins import QueryView

from .rendering import VIEW_KIND
from .series import AXIS_DATETIME, TimeSeries

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw) if math.isfinite(raw) else None
    if isinstance(raw, str):
        text = raw.strip().replace(",", "")
        match = _NUMBER.fullmatch(text) or _NUMBER.search(text)
        if match:
            try:
                return float(match.group(0))
            except ValueError:
                return None
    return None


def _parse_time(text: str) -> float | None:
    import pandas as pd

    try:
        stamp = pd.Timestamp(text.strip().replace("/", "-") if re.match(r"\d{4}/", text.strip()) else text.strip())
    except (ValueError, TypeError, OverflowError):
        return None
    if stamp is pd.NaT:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.value / 1e9


def axis_value(raw: Any, series: TimeSeries) -> float | None:
    """One end of a range as a value on the series' time axis, or None when it cannot be read."""
    if series.axis == AXIS_DATETIME:
        if isinstance(raw, str) and not _NUMBER.fullmatch(raw.strip()):
            return _parse_time(raw)
        value = _number(raw)
        if value is None:
            return None
        if 1e8 <= abs(value) <= 4.2e9:
            return value  # epoch seconds
        if 1e11 <= abs(value) <= 4.2e12:
            return value / 1000.0  # epoch milliseconds
        if 0 <= value <= series.length - 1:  # a sample index (the title prints them too)
            return float(series.time[int(np.rint(value))])
        return None
    return _number(raw)


def _shown(queries: list[QueryView], series: TimeSeries) -> tuple[int, int]:
    maps = [q.view_map for q in queries if q.view_map is not None and q.view_map.kind == VIEW_KIND]
    if not maps:
        return 0, series.length - 1
    return min(int(m.params["sample_start"]) for m in maps), max(int(m.params["sample_end"]) for m in maps)


def _clip(span: tuple[int, int] | None, shown: tuple[int, int]) -> tuple[int, int] | None:
    if span is None:
        return None
    a, b = max(span[0], shown[0]), min(span[1], shown[1])
    return (a, b) if a <= b else None


def locate(item: dict[str, Any], queries: list[QueryView], series: TimeSeries) -> Region | None:
    shown = _shown(queries, series)
    label, reason = str(item.get("label", "")), str(item.get("reason", ""))
    if "range" in item:
        ends = item["range"]
        if not isinstance(ends, (list, tuple)) or len(ends) != 2:
            return None
        t0, t1 = axis_value(ends[0], series), axis_value(ends[1], series)
        if t0 is None or t1 is None:
            return None
        span = _clip(series.samples_in(t0, t1), shown)
        if span is None:
            return None
        detail = series.region_detail(*span)
        detail["source"] = "range"
        return Region(0, 0, 0, 0, score=1.0, label=label, reason=reason, detail=detail)
    found = box_in_view(item, queries)
    if found is None:
        return None
    query, (x0, y0, x1, y1) = found
    view_map = query.view_map
    if view_map is None or view_map.kind != VIEW_KIND:
        return None
    mask = item_mask(item, query, (x0, y0, x1, y1))
    if mask is not None:
        x0, y0, x1, y1 = _mask_extent(mask, (x0, y0, x1, y1))
    p = view_map.params
    left, right = float(p["x_left"]), float(p["x_right"])
    x0, x1 = max(x0, left), min(x1, right)
    if x1 < x0:
        return None  # the box lies in the margins (title, tick labels), not on the plot
    scale = (float(p["t_end"]) - float(p["t_start"])) / (right - left)
    t0, t1 = float(p["t_start"]) + (x0 - left) * scale, float(p["t_start"]) + (x1 - left) * scale
    span = _clip(series.samples_in(t0, t1), (int(p["sample_start"]), int(p["sample_end"])))
    if span is None:
        return None
    detail = series.region_detail(*span)
    detail.update(source="box", view=query.image.label)
    middle = 0.5 * (y0 + y1)
    panels = p.get("panels") or []
    panel = next((q for q in panels if q["top"] <= middle <= q["bottom"]), None)
    if panel is not None:
        detail["column"] = panel["column"]
    number = mark_number(item)
    if number is not None:
        detail["mark"] = number
    return Region(0, 0, 0, 0, score=1.0, label=label, reason=reason, detail=detail)


def _mask_extent(mask: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The part of `box` (view pixels) spanned by the mask's true columns and rows (mask: a grid over box)."""
    x0, y0, x1, y1 = box
    h, w = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    return (x0 + cols[0] * sx, y0 + rows[0] * sy, x0 + (cols[-1] + 1) * sx, y0 + (rows[-1] + 1) * sy)
