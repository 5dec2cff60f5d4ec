"""The in-memory form of a time-series case, shared by the reader, renderer, locator and detector.

One float64 time axis for all columns: epoch seconds (UTC) when the file has timestamps, the
values of a numeric time column in its own units, or the sample index when there is none. Values
stay float64 with NaN kept, so a missing reading is visible as a gap instead of being invented.
The viewer reads this object by attribute only (no import), so it stays a plain dataclass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

AXIS_DATETIME = "datetime"  # epoch seconds (UTC); printed as ISO dates and times
AXIS_NUMERIC = "numeric"  # a numeric time column (seconds since start, ...), printed as numbers
AXIS_INDEX = "index"  # no time column: the sample index


@dataclass
class LabelWindow:
    """A known anomaly window (NAB labels or a 0/1 label column), inclusive sample indices."""

    start: int
    end: int
    source: str = ""

    def to_dict(self, series: TimeSeries) -> dict[str, Any]:
        return {
            "samples": [self.start, self.end],
            "times": [series.format_time(series.time[self.start]), series.format_time(series.time[self.end])],
            "source": self.source,
        }


@dataclass
class TimeSeries:
    """A loaded series: time axis, value columns (rows = samples), names, labels."""

    time: np.ndarray  # float64 (n,), sorted ascending
    values: np.ndarray  # float64 (n, columns), NaN kept
    columns: list[str]
    axis: str = AXIS_INDEX
    time_name: str = ""  # the time column's name in the file ("" when there is none)
    labels: list[LabelWindow] = field(default_factory=list)
    name: str = ""

    @property
    def length(self) -> int:
        return int(self.time.shape[0])

    def column(self, name_or_index: str | int) -> np.ndarray:
        index = self.columns.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        return self.values[:, index]

    # ------------------------------------------------------------------ time <-> samples

    def format_time(self, value: float) -> str | float:
        """An axis value as the operator reads it: ISO text for timestamps, a number otherwise."""
        return format_axis_value(value, self.axis)

    def index_at_or_after(self, t: float) -> int:
        """First sample whose time is >= t (may be `length` when t is past the end)."""
        return int(np.searchsorted(self.time, t, side="left"))

    def index_at_or_before(self, t: float) -> int:
        """Last sample whose time is <= t (may be -1 when t is before the start)."""
        return int(np.searchsorted(self.time, t, side="right")) - 1

    def samples_in(self, t0: float, t1: float) -> tuple[int, int] | None:
        """The inclusive sample range covered by the axis interval [t0, t1]; the nearest sample when
        the interval falls between two samples; None when it lies outside the series."""
        if not (math.isfinite(t0) and math.isfinite(t1)) or self.length == 0:
            return None
        t0, t1 = min(t0, t1), max(t0, t1)
        if t1 < self.time[0] or t0 > self.time[-1]:
            return None
        i0, i1 = self.index_at_or_after(t0), self.index_at_or_before(t1)
        if i0 > i1:  # between two samples: the one nearest to the middle of the interval
            middle = 0.5 * (t0 + t1)
            nearest = i1 if i1 >= 0 and (i0 >= self.length or middle - self.time[i1] <= self.time[i0] - middle) else i0
            i0 = i1 = int(min(max(nearest, 0), self.length - 1))
        return i0, i1

    def region_detail(self, i0: int, i1: int) -> dict[str, Any]:
        """What a Region carries for a sample range: samples and times (ISO with a time axis)."""
        return {
            "samples": [int(i0), int(i1)],
            "times": [self.format_time(self.time[i0]), self.format_time(self.time[i1])],
            "axis": self.axis,
        }


def format_axis_value(value: float, axis: str) -> str | float:
    if axis == AXIS_DATETIME:
        return iso_time(value)
    if axis == AXIS_INDEX:
        return int(np.rint(value))
    return float(value)


def iso_time(epoch_s: float) -> str:
    """Epoch seconds -> 'YYYY-MM-DD HH:MM:SS' (fractional seconds only when present)."""
    ns = int(np.rint(float(epoch_s) * 1e9))
    stamp = np.datetime64(ns, "ns")
    text = str(stamp).replace("T", " ")
    head, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{head}.{frac}" if frac else head
