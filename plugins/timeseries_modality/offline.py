"""The modality's offline verdict: the streaming detector's scores and ranges as an OfflineOutcome.

Per-sample scores go into the verdict's details as "sample_scores": every sample's score (4
decimals) for series up to MAX_SCORES samples; beyond that, the maximum of each block of
"sample_scores_step" samples, so a peak is never averaged away and the stored verdict stays small.
No references are needed: the detector compares each sample with the series' own past.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from inspector.model import Region
from inspector.plugins import OfflineContext, OfflineOutcome

from .detector import FEATURE_TEXT, FEATURES, DetectorSettings, detect, pooled_scores, settings_record
from .series import TimeSeries

MAX_SCORES = 50_000
MAX_REGIONS = 50
MODEL_NAME = "streaming robust z detector (offline, no references)"


def offline_detect(series: TimeSeries, context: OfflineContext) -> OfflineOutcome:
    options: dict[str, Any] = dict(context.options or {})
    settings = DetectorSettings.from_options(options.get("detector", options))
    started = time.perf_counter()
    result = detect(series.values, settings, progress=context.progress, is_cancelled=context.is_cancelled)
    elapsed = time.perf_counter() - started
    regions = []
    for i0, i1 in result.ranges:
        peak = i0 + int(np.argmax(result.scores[i0 : i1 + 1]))
        regions.append(_region(series, result, i0, i1, peak))
    regions.sort(key=lambda r: -r.score)
    kept = sorted(regions[:MAX_REGIONS], key=lambda r: r.detail["samples"][0])
    scores, step = pooled_scores(result.scores, MAX_SCORES)
    top = int(np.argmax(result.scores)) if series.length else 0
    max_score = float(result.scores[top]) if series.length else 0.0
    anomalous = bool(kept)
    score = max(r.score for r in kept) if kept else min(max_score, 0.499)
    details = {
        "sample_scores": scores,
        "sample_scores_step": step,
        "threshold": settings.high,
        "warmup": settings.warmup,
        "detector": settings_record(settings),
        "column_peaks": {
            c: round(float(result.column_scores[:, i].max()), 4) if series.length else 0.0
            for i, c in enumerate(series.columns)
        },
        "ranges_found": len(result.ranges),
    }
    explanation = _explain(series, result, kept, top, max_score)
    return OfflineOutcome(
        anomalous=anomalous,
        score=float(score),
        explanation=explanation,
        regions=kept,
        heatmap=None,
        details=details,
        model=MODEL_NAME,
        summary=f"{len(result.ranges)} ranges, peak score {max_score:.3f}, "
        f"{series.length} samples x {len(series.columns)} columns in {elapsed:.2f} s",
    )


def _region(series: TimeSeries, result, i0: int, i1: int, peak: int) -> Region:
    column = series.columns[int(result.column[peak])]
    feature = int(result.feature[peak])
    what = FEATURE_TEXT[FEATURES[feature]] if feature >= 0 else "deviation"
    detail = series.region_detail(i0, i1)
    detail.update(
        column=column,
        peak_sample=peak,
        peak_time=series.format_time(series.time[peak]),
        feature=FEATURES[feature] if feature >= 0 else "",
    )
    reason = (
        f"{column}: {what}, {result.z[peak]:.1f} robust SDs at {detail['peak_time']} (score {result.scores[peak]:.2f})"
    )
    return Region(
        0,
        0,
        0,
        0,
        score=round(float(result.scores[peak]), 4),
        label=FEATURES[feature] if feature >= 0 else "anomaly",
        reason=reason,
        detail=detail,
    )


def _explain(series: TimeSeries, result, regions: list[Region], top: int, max_score: float) -> str:
    if not regions:
        if series.length <= result.settings.warmup:
            return (
                f"The series has {series.length} samples, not more than the detector's warm-up of "
                f"{result.settings.warmup}: nothing could be scored."
            )
        return (
            f"No range reaches the threshold; the highest score is {max_score:.2f} at "
            f"{series.format_time(series.time[top])} (sample {top})."
        )
    first = regions[0].detail
    strongest = max(regions, key=lambda r: r.score)
    return (
        f"{len(result.ranges)} anomalous range{'s' if len(result.ranges) != 1 else ''} found, the first "
        f"from {first['times'][0]} to {first['times'][1]}. Strongest: {strongest.reason}."
    )
