"""Drawing a stretch of a series as a plain line plot with Pillow, for the model to read.

Pillow rather than matplotlib: no extra dependency, and every pixel position is computed here, so
the map from an x pixel back to a time (and a sample) is exact by construction. Long stretches are
drawn as a per-pixel-column min/max envelope, so a one-sample spike among a million samples still
shows. Missing data (NaN runs and gaps in the timestamps) is drawn as grey bands, never bridged
silently. Ticks are "nice" numbers or calendar-aligned times, printed in full (a date with the
time) so the model can answer in exactly the units it sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .series import AXIS_DATETIME, AXIS_INDEX, TimeSeries, iso_time

BACKGROUND = (255, 255, 255)
FRAME = (70, 70, 70)
GRID = (226, 226, 226)
TEXT = (20, 20, 20)
LINE = (31, 78, 156)
MISSING = (236, 236, 236)
_DAY = 86400.0
_TIME_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
)
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120)


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# ---------------------------------------------------------------------------------------------- ticks


def nice_ticks(lo: float, hi: float, max_ticks: int, integer: bool = False) -> tuple[list[float], float]:
    """Round-numbered ticks inside [lo, hi] (1, 2 or 5 x 10^k apart) and their step."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo], 1.0
    raw = (hi - lo) / max(1, max_ticks)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step and len(ticks) < 100:
        ticks.append(value)
        value = first + len(ticks) * step
    return ticks, step


def format_number(value: float, step: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e7 or step < 1e-4:
        return f"{value:.4g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return f"{value:.{decimals}f}"


def time_ticks(lo: float, hi: float, max_ticks: int) -> tuple[list[float], float]:
    """Calendar-aligned ticks (UTC) for epoch seconds, and their step in seconds (~30 d for months)."""
    span = hi - lo
    if span <= 0:
        return [lo], 1.0
    for step in _TIME_STEPS:
        if span / step <= max_ticks:
            first = math.ceil(lo / step) * step
            return list(np.arange(first, hi + 1e-6, step, dtype=np.float64)), float(step)
    start = np.datetime64(math.floor(lo), "s").astype("datetime64[M]")
    end = np.datetime64(math.ceil(hi), "s").astype("datetime64[M]")
    months = int((end - start).astype(int)) + 1
    step_months = next((m for m in _MONTH_STEPS if months / m <= max_ticks), _MONTH_STEPS[-1])
    stamps = np.arange(start, end + 1, step_months).astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return [float(t) for t in stamps if lo <= t <= hi], step_months * 30 * _DAY


def format_time_tick(value: float, step: float) -> str:
    text = iso_time(value)
    if step < 60:
        return text[:19]
    if step < _DAY:
        return text[:16]
    return text[:10]


def axis_ticks(lo: float, hi: float, axis: str, width_px: int) -> list[tuple[float, str]]:
    """(value, label) ticks for an x axis of `width_px` pixels, spaced so the labels never overlap."""
    sample = {AXIS_DATETIME: "2000-00-00 00:00", AXIS_INDEX: "0000000"}.get(axis, "0000.000")
    label_px = font(13).getlength(sample) + 28
    max_ticks = max(2, int(width_px // label_px))
    if axis == AXIS_DATETIME:
        ticks, step = time_ticks(lo, hi, max_ticks)
        labels = [format_time_tick(t, step) for t in ticks]
        if step < _DAY and len(ticks) > 1:  # times within a day: the width may not hold full labels
            while len(ticks) > 2 and max(font(13).getlength(s) for s in labels) + 16 > width_px / len(ticks):
                ticks, step = time_ticks(lo, hi, len(ticks) - 1)
                labels = [format_time_tick(t, step) for t in ticks]
        return list(zip(ticks, labels, strict=True))
    ticks, step = nice_ticks(lo, hi, max_ticks, integer=axis == AXIS_INDEX)
    return [(t, format_number(t, step)) for t in ticks]


# ---------------------------------------------------------------------------------------------- plot


@dataclass
class PlotGeometry:
    width: int
    height: int
    left: int  # x pixel of the plot's left edge (axis value t_start)
    right: int  # x pixel of the plot's right edge (axis value t_end)
    panels: list[tuple[int, int]]  # (top, bottom) pixel rows of each column's panel


def geometry(columns: int, width: int) -> PlotGeometry:
    panel = int(min(260, max(120, 620 // max(1, columns))))
    top, gap, bottom_margin = 30, 10, 50
    panels = [(top + i * (panel + gap), top + i * (panel + gap) + panel) for i in range(columns)]
    return PlotGeometry(width, panels[-1][1] + bottom_margin, 84, width - 18, panels)


def value_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def missing_spans(time: np.ndarray, values: np.ndarray, gap_step: float) -> list[tuple[float, float]]:
    """Axis intervals without data: NaN runs, and steps longer than `gap_step`."""
    spans: list[tuple[float, float]] = []
    nan = ~np.isfinite(values)
    if nan.any():
        padded = np.concatenate([[False], nan, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            t0 = time[a - 1] if a > 0 else time[a]
            t1 = time[b] if b < time.size else time[b - 1]
            spans.append((float(t0), float(t1)))
    if gap_step > 0 and time.size > 1:
        steps = np.diff(time)
        for i in np.flatnonzero(steps > gap_step)[:500]:
            spans.append((float(time[i]), float(time[i + 1])))
    return spans


def draw_series_plot(
    series: TimeSeries,
    i0: int,
    i1: int,
    column_indices: list[int],
    title: str,
    y_ranges: list[tuple[float, float]],
    width: int = 1024,
    gap_step: float = 0.0,
) -> tuple[np.ndarray, PlotGeometry, float, float]:
    """One plot image of samples i0..i1 (inclusive): a panel per column, shared x axis.

    Returns (RGB image, geometry, t_start, t_end): x pixel `left` is axis value t_start and `right`
    is t_end, linearly in between (time-linear, so irregular sampling is drawn where it happened).
    """
    geo = geometry(len(column_indices), width)
    image = Image.new("RGB", (geo.width, geo.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    time = series.time[i0 : i1 + 1]
    t_start, t_end = float(time[0]), float(time[-1])
    if t_end <= t_start:
        half = max(gap_step, 1.0) / 2
        t_start, t_end = t_start - half, t_end + half
    span_px = geo.right - geo.left

    def x_of(t: np.ndarray | float) -> np.ndarray:
        return geo.left + (np.asarray(t, dtype=np.float64) - t_start) / (t_end - t_start) * span_px

    draw.text((geo.left, 7), title, fill=TEXT, font=font(15))
    ticks = axis_ticks(t_start, t_end, series.axis, span_px)
    for panel_number, (column, (top, bottom), (lo, hi)) in enumerate(
        zip(column_indices, geo.panels, y_ranges, strict=True)
    ):
        values = series.values[i0 : i1 + 1, column]
        for a, b in missing_spans(time, values, gap_step):
            xa, xb = float(x_of(a)), float(x_of(b))
            draw.rectangle([max(geo.left, xa), top + 1, min(geo.right, max(xb, xa + 1)), bottom - 1], fill=MISSING)
        y_ticks, y_step = nice_ticks(lo, hi, max(2, (bottom - top) // 45))

        def y_of(
            v: np.ndarray | float, lo: float = lo, hi: float = hi, top: int = top, bottom: int = bottom
        ) -> np.ndarray:
            return bottom - (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * (bottom - top)

        for value in y_ticks:
            y = float(y_of(value))
            draw.line([(geo.left, y), (geo.right, y)], fill=GRID)
            label = format_number(value, y_step)
            draw.text((geo.left - 6 - font(13).getlength(label), y - 8), label, fill=TEXT, font=font(13))
        for value, _ in ticks:
            x = float(x_of(value))
            draw.line([(x, top), (x, bottom)], fill=GRID)
            draw.line([(x, bottom), (x, bottom + 4)], fill=FRAME)
        _draw_line(draw, x_of(time), y_of(values), values, span_px, geo.left)
        draw.rectangle([geo.left, top, geo.right, bottom], outline=FRAME)
        name = series.columns[column]
        box = draw.textbbox((geo.left + 6, top + 4), name, font=font(13))
        draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=BACKGROUND, outline=GRID)
        draw.text((geo.left + 6, top + 4), name, fill=TEXT, font=font(13))
        if panel_number == len(column_indices) - 1:
            for value, label in ticks:
                x = float(x_of(value))
                half = font(13).getlength(label) / 2
                x_text = min(max(x - half, 2), geo.width - 2 - 2 * half)
                draw.text((x_text, bottom + 7), label, fill=TEXT, font=font(13))
            axis_title = {
                AXIS_DATETIME: f"{series.time_name or 'time'} (date and time)",
                AXIS_INDEX: "sample index",
            }.get(series.axis, series.time_name or "time")
            draw.text(
                (geo.left + span_px / 2 - font(13).getlength(axis_title) / 2, bottom + 27),
                axis_title,
                fill=(90, 90, 90),
                font=font(13),
            )
    return np.asarray(image), geo, t_start, t_end


def _draw_line(
    draw: ImageDraw.ImageDraw, xs: np.ndarray, ys: np.ndarray, values: np.ndarray, span_px: int, left: int
) -> None:
    """A polyline for sparse stretches, a min/max envelope per pixel column for dense ones."""
    finite = np.isfinite(values)
    if xs.size <= span_px * 1.5:
        width = 2 if xs.size <= span_px / 3 else 1
        padded = np.concatenate([[False], finite, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            points = list(zip(xs[a:b].tolist(), ys[a:b].tolist(), strict=True))
            if len(points) == 1:
                x, y = points[0]
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=LINE)
            else:
                draw.line(points, fill=LINE, width=width)
        return
    columns = np.clip(np.round(xs - left).astype(np.int64), 0, span_px)
    starts = np.flatnonzero(np.concatenate([[True], columns[1:] != columns[:-1]]))
    ends = np.concatenate([starts[1:], [columns.size]]) - 1
    with np.errstate(invalid="ignore"):
        low = np.fmax.reduceat(np.where(finite, ys, -np.inf), starts)  # y grows downwards: max y = min value
        high = np.fmin.reduceat(np.where(finite, ys, np.inf), starts)
    present = np.isfinite(low) & np.isfinite(high)
    previous_last = None
    previous_column = None
    for k in range(starts.size):
        if not present[k]:
            previous_last = None
            continue
        x = left + int(columns[starts[k]])
        top, bottom = float(high[k]), float(low[k])
        if previous_last is not None and previous_column is not None and x - previous_column <= 2:
            top, bottom = min(top, previous_last), max(bottom, previous_last)
        draw.line([(x, top), (x, bottom)], fill=LINE, width=1)
        last = ys[ends[k]] if finite[ends[k]] else None
        previous_last = float(last) if last is not None else None
        previous_column = x
