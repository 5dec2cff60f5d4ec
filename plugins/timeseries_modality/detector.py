"""A streaming, robust anomaly detector for sensor series: no references, no look-ahead.

Every score at sample t uses only samples up to t (the statistics use the samples before t), so
the same scores come out whether the series is scored at once or as it arrives, and the detector
can be benchmarked honestly on NAB, whose protocol is online. Per value column three residuals
are followed, each against its own past:

* level: the value minus the median of the past `window` samples (sustained shifts, outliers);
* change: the first difference minus its past median (spikes and jumps, at their onset);
* variability: the log of the recent mean absolute difference minus its past median (a signal
  that goes flat, or turns noisy).

A residual becomes a robust z (over 1.4826 x the past median absolute residual), and the z is
compared with what this series produced itself recently (by default the largest z of the past
`window` samples: "more extreme than anything lately"), so a daily square wave or routinely spiky
counts do not raise alarms at every edge, and an alarm is not repeated for every sample after it.
Samples already flagged are left out of that reference (a second pass over past flags, still
causal), so one big spike does not hide a smaller fault that follows it within the window.
The ratio is squashed to 0..1 with 0.5 at the decision threshold; columns and residuals combine by
maximum. Ranges come from hysteresis (enter at 0.5, stay above `low`), short gaps merged, short
runs dropped (ranges are a summary drawn afterwards; the per-sample scores are the streaming part).

The defaults were chosen on NAB (window, reference = past maximum, threshold ratio, variability
weight; see benchmarks/time_series.py), so NAB figures are in-sample for those few choices; leaving
flagged samples out of the reference costs about 5 NAB points (NAB rewards the masking: fewer
false-positive rows) and is kept on because an operator should see the second fault too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

FEATURES = ("level", "change", "variability")
FEATURE_TEXT = {
    "level": "level away from its recent median",
    "change": "sudden change (first difference)",
    "variability": "change in local variability",
}


@dataclass
class DetectorSettings:
    """Tunables, overridable from the profile's settings["time_series"]["detector"]."""

    window: int = 2000  # past samples the statistics use
    warmup: int = 150  # samples before the first score (too little history before)
    short: int = 12  # samples of the local variability
    variability_weight: float = 0.8  # the log-spread residual has heavier tails than noise z: a higher bar
    quantile: float = 1.0  # the series' own past z quantile a new z is compared with (1.0: the maximum)
    exclude_flagged: bool = True  # flagged samples do not raise the reference (one anomaly hides fewer later ones)
    z_floor: float = 5.0  # a z under this never counts as anomalous, however calm the past
    ratio_at_threshold: float = 1.1  # z / reference at which the score is 0.5
    sharpness: float = 4.0  # steepness of the squash
    high: float = 0.5  # hysteresis: a range starts at this score ...
    low: float = 0.3  # ... and continues while the score stays above this
    min_length: int = 2  # ranges shorter than this (in samples) are dropped
    merge_gap: int = 12  # ranges closer than this (in samples) are merged

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> DetectorSettings:
        options = options or {}
        known = {f.name for f in fields(cls)}
        values = {}
        defaults = cls()
        for key, value in options.items():
            if key not in known or not isinstance(value, (int, float)):
                continue
            default = getattr(defaults, key)
            if isinstance(value, bool) == isinstance(default, bool):
                values[key] = type(default)(value)
        return cls(**values)


@dataclass
class DetectorResult:
    scores: np.ndarray  # (n,) combined score 0..1
    column_scores: np.ndarray  # (n, columns)
    feature: np.ndarray  # (n,) index into FEATURES of the winning residual, -1 when none
    column: np.ndarray  # (n,) index of the winning column
    z: np.ndarray  # (n,) the winning robust z
    ranges: list[tuple[int, int]]
    settings: DetectorSettings


def _past(series, window: int, minimum: int):
    """Rolling statistics over the samples strictly before t."""
    return series.shift(1).rolling(window, min_periods=minimum)


def _robust_z(residual, settings: DetectorSettings):
    """|residual| over 1.4826 x the past median absolute residual (floored so flat pasts stay finite)."""
    import pandas as pd

    magnitude = residual.abs()
    scale = _past(magnitude, settings.window, settings.warmup // 2).median() * 1.4826
    mean_abs = _past(magnitude, settings.window, settings.warmup // 2).mean()
    floor = np.maximum(0.1 * mean_abs.to_numpy(), 1e-9)
    scale = np.maximum(scale.to_numpy(), floor)
    return pd.Series(magnitude.to_numpy() / scale)


def feature_z(x: np.ndarray, settings: DetectorSettings) -> np.ndarray:
    """(n, 3) robust z of the level, change and variability residuals of one column (NaN: no score)."""
    import pandas as pd

    s = pd.Series(np.asarray(x, dtype=np.float64))
    w, minimum = settings.window, settings.warmup
    level = s - _past(s, w, minimum).median()
    diff = s.diff()
    change = diff - _past(diff, w, minimum).median()
    spread = diff.abs().rolling(settings.short, min_periods=max(2, settings.short // 2)).mean()
    typical = float(np.nanmedian(np.abs(diff.to_numpy()[: max(minimum, 2)]))) if len(s) > 2 else 0.0
    eps = max(typical, 1e-12) * 0.05 + 1e-12
    log_spread = np.log(spread + eps)
    variability = log_spread - _past(log_spread, w, minimum).median()
    out = np.column_stack([_robust_z(r, settings).to_numpy() for r in (level, change, variability)])
    out[:, 2] *= settings.variability_weight
    out[: settings.warmup] = np.nan
    return out


def _relative(z: np.ndarray, settings: DetectorSettings) -> np.ndarray:
    """z over the larger of the floor and the series' own past z quantile: how unusual for *this* series."""
    import pandas as pd

    def ratio_to_past(values: np.ndarray) -> np.ndarray:
        past = _past(pd.DataFrame(values), settings.window, settings.warmup // 2)
        reference = (past.max() if settings.quantile >= 1.0 else past.quantile(settings.quantile)).to_numpy()
        reference = np.where(np.isfinite(reference), reference, settings.z_floor)
        return z / np.maximum(reference, settings.z_floor)

    ratio = ratio_to_past(z)
    if settings.exclude_flagged:
        ratio = ratio_to_past(np.where(ratio >= settings.ratio_at_threshold, np.nan, z))
    return ratio


def squash(ratio: np.ndarray, settings: DetectorSettings) -> np.ndarray:
    """Ratio -> 0..1, 0.5 where the ratio equals `ratio_at_threshold`."""
    r = np.nan_to_num(np.asarray(ratio, dtype=np.float64), nan=0.0, posinf=1e6)
    p = settings.sharpness
    rp = np.power(np.clip(r / settings.ratio_at_threshold, 0, 1e6), p)
    return rp / (1.0 + rp)


def hysteresis_ranges(scores: np.ndarray, settings: DetectorSettings) -> list[tuple[int, int]]:
    """Inclusive ranges: enter at `high`, stay while above `low`; merge close ones, drop short ones."""
    above_low = scores >= settings.low
    ranges: list[list[int]] = []
    start_candidates = np.flatnonzero(scores >= settings.high)
    position = 0
    for start in start_candidates:
        if start < position:
            continue
        begin = int(start)
        while begin > 0 and above_low[begin - 1] and (not ranges or begin - 1 > ranges[-1][1]):
            begin -= 1
        end = int(start)
        while end + 1 < scores.size and above_low[end + 1]:
            end += 1
        if ranges and begin - ranges[-1][1] - 1 <= settings.merge_gap:
            ranges[-1][1] = end
        else:
            ranges.append([begin, end])
        position = end + 1
    return [(a, b) for a, b in ranges if b - a + 1 >= settings.min_length]


def detect(
    values: np.ndarray, settings: DetectorSettings | None = None, progress=None, is_cancelled=None
) -> DetectorResult:
    """Score every sample of every column; combine; find ranges."""
    settings = settings or DetectorSettings()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n, k = values.shape
    column_scores = np.zeros((n, k))
    best_feature = np.full((n, k), -1, dtype=np.int8)
    best_z = np.zeros((n, k))
    for c in range(k):
        if is_cancelled is not None and is_cancelled():
            break
        z = feature_z(values[:, c], settings)
        ratio = _relative(z, settings)
        score = squash(ratio, settings)  # (n, 3)
        score[~np.isfinite(ratio)] = 0.0
        winner = np.argmax(score, axis=1)
        column_scores[:, c] = score[np.arange(n), winner]
        best_feature[:, c] = np.where(column_scores[:, c] > 0, winner, -1)
        best_z[:, c] = np.nan_to_num(z[np.arange(n), winner], nan=0.0)
        if progress is not None:
            progress((c + 1) / k)
    column = np.argmax(column_scores, axis=1) if k else np.zeros(n, dtype=int)
    rows = np.arange(n)
    scores = column_scores[rows, column] if k else np.zeros(n)
    ranges = hysteresis_ranges(scores, settings)
    return DetectorResult(
        scores=scores,
        column_scores=column_scores,
        feature=best_feature[rows, column],
        column=column,
        z=best_z[rows, column],
        ranges=ranges,
        settings=settings,
    )


def pooled_scores(scores: np.ndarray, max_points: int) -> tuple[list[float], int]:
    """Per-sample scores for the verdict: all of them up to `max_points`, else the max of each block."""
    n = scores.size
    step = max(1, math.ceil(n / max_points)) if n else 1
    if step > 1:
        padded = np.concatenate([scores, np.zeros((-n) % step)])
        scores = padded.reshape(-1, step).max(axis=1)
    return [round(float(v), 4) for v in scores], step


def settings_record(settings: DetectorSettings) -> dict[str, Any]:
    return asdict(settings)
