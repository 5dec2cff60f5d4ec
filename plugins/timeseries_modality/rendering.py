"""Views of a series for the model: plot images of overlapping windows, each mapped back to samples.

By default the whole series is shown; a selection in the viewer (``{"window": [i0, i1]}``) narrows
it. A stretch longer than ``max_points_per_image`` is split into up to ``max_images`` windows that
overlap by ``overlap`` (a tenth), so an event on a window edge is seen whole at least once. The
x axis prints global sample indices or full timestamps, so a range the model writes "in the units
of the x axis" means the same thing whichever window it looked at. All windows of one render
share each column's y range, so amplitudes compare across images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inspector.model import View, ViewMap

from .plotting import draw_series_plot, value_range
from .series import AXIS_INDEX, TimeSeries, format_axis_value

VIEW_KIND = "sample_range"
DEFAULTS: dict[str, Any] = {
    "max_points_per_image": 5000,
    "max_images": 4,
    "overlap": 0.1,
    "width": 1024,
    "max_columns": 6,
}


def _int_option(options: dict[str, Any], key: str, low: int, high: int) -> int:
    value = options.get(key, DEFAULTS[key])
    try:
        return int(min(max(int(value), low), high))
    except (TypeError, ValueError):
        return int(DEFAULTS[key])


def selected_span(series: TimeSeries, options: dict[str, Any]) -> tuple[int, int]:
    """The sample range to show: the viewer's selection when it is valid, else the whole series."""
    n = series.length
    window = options.get("window")
    if isinstance(window, (list, tuple)) and len(window) == 2:
        try:
            a, b = sorted(int(v) for v in window)
        except (TypeError, ValueError):
            return 0, n - 1
        a, b = max(0, a), min(n - 1, b)
        if a <= b:
            return a, b
    return 0, n - 1


def split_windows(i0: int, i1: int, max_points: int, max_images: int, overlap: float) -> list[tuple[int, int]]:
    """Overlapping windows covering i0..i1: as few as keep each under `max_points`, at most `max_images`."""
    total = i1 - i0 + 1
    count = min(max_images, max(1, math.ceil(total / max_points)))
    if count == 1:
        return [(i0, i1)]
    overlap = min(max(overlap, 0.0), 0.5)
    length = math.ceil(total / (1 + (count - 1) * (1 - overlap)))
    step = (total - length) / (count - 1)
    windows = []
    for k in range(count):
        a = i0 + math.floor(k * step + 0.5)
        windows.append((a, min(i1, a + length - 1)))
    windows[-1] = (windows[-1][0], i1)
    return windows


def _time_text(series: TimeSeries, i: int) -> str:
    value = format_axis_value(series.time[i], series.axis)
    return value[:16] if isinstance(value, str) and value.endswith(":00") and len(value) == 19 else str(value)


def window_label(series: TimeSeries, a: int, b: int, k: int, count: int) -> str:
    text = f"samples {a}-{b}"
    if series.axis != AXIS_INDEX:
        text += f" ({_time_text(series, a)} to {_time_text(series, b)})"
    return f"window {k} of {count}: {text}" if count > 1 else text


def gap_threshold(series: TimeSeries) -> float:
    """A step longer than this is drawn as missing data: 1.5 x the usual step for regular sampling,
    5 x for irregular sampling (the same rule as the reader's gap count)."""
    steps = np.diff(series.time)
    positive = steps[steps > 0]
    if positive.size == 0:
        return 0.0
    median = float(np.median(positive))
    regular = float(np.mean(np.abs(steps - median) <= 0.01 * median)) >= 0.95
    return (1.5 if regular else 5.0) * median


def render(series: TimeSeries, options: dict[str, Any] | None = None) -> list[View]:
    options = dict(options or {})
    i0, i1 = selected_span(series, options)
    max_points = _int_option(options, "max_points_per_image", 50, 10_000_000)
    max_images = _int_option(options, "max_images", 1, 12)
    width = _int_option(options, "width", 320, 2048)
    max_columns = _int_option(options, "max_columns", 1, 12)
    try:
        overlap = float(options.get("overlap", DEFAULTS["overlap"]))
    except (TypeError, ValueError):
        overlap = DEFAULTS["overlap"]
    wanted = options.get("columns")
    columns = [series.columns.index(c) for c in wanted if c in series.columns] if isinstance(wanted, list) else []
    columns = (columns or list(range(len(series.columns))))[:max_columns]
    y_ranges = [value_range(series.values[i0 : i1 + 1, c]) for c in columns]
    gap_step = gap_threshold(series)
    windows = split_windows(i0, i1, max_points, max_images, overlap)
    views = []
    for k, (a, b) in enumerate(windows, start=1):
        label = window_label(series, a, b, k, len(windows))
        title = (
            label
            if len(columns) == len(series.columns)
            else (f"{label}, {len(columns)} of {len(series.columns)} columns")
        )
        image, geo, t_start, t_end = draw_series_plot(series, a, b, columns, title, y_ranges, width, gap_step)
        params = {
            "x_left": geo.left,
            "x_right": geo.right,
            "width": geo.width,
            "height": geo.height,
            "sample_start": a,
            "sample_end": b,
            "t_start": t_start,
            "t_end": t_end,
            "time_start": format_axis_value(series.time[a], series.axis),
            "time_end": format_axis_value(series.time[b], series.axis),
            "axis": series.axis,
            "scale": "linear",
            "panels": [
                {"column": series.columns[c], "top": top, "bottom": bottom}
                for c, (top, bottom) in zip(columns, geo.panels, strict=True)
            ],
            "window": k,
            "windows": len(windows),
            "n_samples": series.length,
        }
        views.append(View(label=label, image=image, view_map=ViewMap(VIEW_KIND, params)))
    return views
