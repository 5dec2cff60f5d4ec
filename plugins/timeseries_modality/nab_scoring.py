"""The NAB score (Lavin & Ahmad, 2015), implemented as NAB's own sweeper and optimizer score.

Per file: the first 15 % of the rows (at most 750) are a probationary period and not scored. A
detection is a row whose anomaly score is at or above the threshold. Inside a labelled window only
the earliest detection counts, weighted by the scaled sigmoid of its relative position (1.0 at the
window's left edge, 0 at its right edge: A_TP x sigma(pos) / sigma(-1)); a window without a
detection costs A_FN. Every detection outside a window costs A_FP x sigma(distance past the
preceding window, in window widths - 1), i.e. the full A_FP before any window and more than three
window widths after one. Profiles are cost matrices; the standard one is A_TP=1, A_FP=0.11 (as a
cost, contributing -0.11), A_FN=1.

The threshold is chosen as NAB does: one threshold for the whole corpus, the one that maximises
the corpus total. The final score is normalised between the null detector (a constant score, its
threshold optimised the same way) and the perfect one (every window detected at its left edge):
100 x (raw - null) / (perfect - null), with perfect = number of labelled windows x A_TP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PROFILES = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0},
}
PROBATION_PERCENT = 0.15


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's 2*sigmoid(-5x) - 1, clamped to -1 from x >= 3."""
    x = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, value)


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> float:
    return min(math.floor(percent * n), percent * 5000)


@dataclass
class ScoredFile:
    """One file's rows as the sweeper sees them: per-row weight if detected, the window it is in."""

    name: str
    group: str
    scores: np.ndarray  # detector scores (n,)
    sweep: np.ndarray  # weight of a detection at this row (n,)
    window: np.ndarray  # window number within the file, -1 outside windows (n,)
    scorable: np.ndarray  # False in the probationary period
    n_windows: int  # labelled windows (all of them, as NAB's normaliser counts)
    windows: list[tuple[int, int]] = field(default_factory=list)


def sweep_file(
    name: str, group: str, scores: np.ndarray, windows: list[tuple[int, int]], profile: dict[str, float]
) -> ScoredFile:
    """Per-row detection weights, as NAB's Sweeper.calcSweepScore computes them (vectorised)."""
    n = len(scores)
    index = np.arange(n, dtype=np.float64)
    sweep = np.empty(n)
    window_of = np.full(n, -1, dtype=np.int64)
    max_tp = float(scaled_sigmoid(-1.0))
    ordered = sorted(windows)
    inside = np.zeros(n, dtype=bool)
    for number, (a, b) in enumerate(ordered):
        width = b - a + 1
        rows = slice(a, b + 1)
        sweep[rows] = scaled_sigmoid(-(b - index[rows] + 1) / width) * profile["tpWeight"] / max_tp
        window_of[rows] = number
        inside[rows] = True
    # outside: distance past the preceding window (or "far" before any window)
    prev_end = np.full(n, -1.0)
    prev_width = np.ones(n)
    for a, b in ordered:
        after = index > b
        prev_end[after] = b
        prev_width[after] = b - a + 1
    position = np.where(prev_end < 0, 3.0, np.abs(prev_end - index) / np.maximum(prev_width - 1, 1e-9))
    outside = ~inside
    sweep[outside] = scaled_sigmoid(position[outside]) * profile["fpWeight"]
    scorable = index >= probation_length(n)
    return ScoredFile(
        name, group, np.asarray(scores, dtype=np.float64), sweep, window_of, scorable, len(ordered), ordered
    )


@dataclass
class ThresholdSweep:
    thresholds: np.ndarray  # descending; the first is "above every score" (nothing detected)
    totals: np.ndarray

    def best(self) -> tuple[float, float]:
        i = int(np.argmax(self.totals))  # first maximum: the highest threshold among ties
        return float(self.thresholds[i]), float(self.totals[i])


def sweep_thresholds(files: list[ScoredFile], profile: dict[str, float]) -> ThresholdSweep:
    """Corpus total for every distinct threshold (NAB's optimizer), in one pass over sorted rows."""
    import pandas as pd

    scores, sweeps, keys = [], [], []
    n_windows = 0
    for number, f in enumerate(files):
        keep = f.scorable
        scores.append(f.scores[keep])
        sweeps.append(f.sweep[keep])
        key = np.where(f.window[keep] >= 0, number * 100000 + f.window[keep], -1)
        keys.append(key)
        n_windows += len(np.unique(key[key >= 0]))
    score = np.concatenate(scores) if scores else np.zeros(0)
    sweep = np.concatenate(sweeps) if sweeps else np.zeros(0)
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    score, sweep, key = score[order], sweep[order], key[order]
    fp_part = np.where(key < 0, sweep, 0.0)
    in_window = key >= 0
    increments = np.zeros(score.size)
    if in_window.any():
        frame = pd.DataFrame({"key": key[in_window], "sweep": sweep[in_window]})
        running = frame.groupby("key")["sweep"].cummax()
        before = running.groupby(frame["key"]).shift(1).fillna(-profile["fnWeight"])
        increments[in_window] = np.maximum(running.to_numpy(), -profile["fnWeight"]) - np.maximum(
            before.to_numpy(), -profile["fnWeight"]
        )
    base = -profile["fnWeight"] * n_windows
    totals = base + np.cumsum(fp_part + increments)
    last_of_group = np.ones(score.size, dtype=bool)
    last_of_group[:-1] = score[1:] != score[:-1]
    thresholds = np.concatenate([[np.inf], score[last_of_group]])
    return ThresholdSweep(thresholds, np.concatenate([[base], totals[last_of_group]]))


@dataclass
class FileScore:
    name: str
    group: str
    raw: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows (rows)
    n_windows: int


def score_file(f: ScoredFile, threshold: float, profile: dict[str, float]) -> FileScore:
    """Raw NAB score of one file at a fixed threshold (detections: score >= threshold)."""
    detected = (f.scores >= threshold) & f.scorable
    fp_rows = detected & (f.window < 0)
    raw = float(f.sweep[fp_rows].sum())
    tp = fn = 0
    for number in range(f.n_windows):
        rows = f.window == number
        if not (rows & f.scorable).any():
            continue  # a window inside the probationary period is not scored
        hits = detected & rows
        if hits.any():
            raw += float(f.sweep[hits].max())
            tp += 1
        else:
            raw -= profile["fnWeight"]
            fn += 1
    return FileScore(f.name, f.group, raw, tp, fn, int(fp_rows.sum()), f.n_windows)


def null_total(files: list[ScoredFile], profile: dict[str, float]) -> float:
    """NAB's null detector: a constant score, threshold optimised (detect all rows, or none)."""
    constant = [
        ScoredFile(f.name, f.group, np.full(f.scores.size, 0.5), f.sweep, f.window, f.scorable, f.n_windows, f.windows)
        for f in files
    ]
    return sweep_thresholds(constant, profile).best()[1]


def normalised(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")


def range_f1(predicted: list[tuple[int, int]], labelled: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    """Event-level counts: (predicted ranges overlapping a window, predicted ranges,
    windows overlapped by a prediction, windows)."""

    def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] <= b[1] and b[0] <= a[1]

    good = sum(1 for p in predicted if any(overlaps(p, w) for w in labelled))
    found = sum(1 for w in labelled if any(overlaps(p, w) for p in predicted))
    return good, len(predicted), found, len(labelled)


def prf(good: int, predicted: int, found: int, labelled: int) -> tuple[float, float, float]:
    precision = good / predicted if predicted else (1.0 if labelled == 0 else 0.0)
    recall = found / labelled if labelled else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
