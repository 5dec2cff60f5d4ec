"""The video modality's offline detector: every frame compared with normal reference frames.

Method: the built-in EfficientNet-Lite0 patch detector (`inspector.detector.offline`), fitted on
the profile's normal references (frames of normal videos), in a setting chosen for video: one
input scale of 320 px, no test-time flips and no flipped references (a fixed camera has one
orientation). Measured on UCSD Ped2 (32 training frames as references, every 3rd test frame,
raw frame AUROC before smoothing): the full two-scale, four-flip image detector 0.837 at about
210 ms per frame; one scale of 256 px without flips 0.831-0.832 at 30-70 ms; 320 px 0.860 at
about 37 ms; 448 px 0.868 at 72 ms. 320 px is the default (profile option ``image_size``). Per-frame raw
scores are smoothed over time (Gaussian, sigma 0.4 s: an anomaly in a video lasts longer than a
frame, single-frame noise does not) and then calibrated with the detector's own leave-one-out rule,
so 0.5 is the same threshold as for images.

Budget: long videos are scored every k-th frame (at most `max_scored_frames`, default 400) and
interpolated in between; `details["scored_frames"]` lists the frames actually scored.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

import numpy as np

from inspector.model import LoadedCase, Region
from inspector.plugins import OfflineContext, OfflineOutcome

from .source import FrameSource

MAX_SCORED_FRAMES = 400
SMOOTH_SECONDS = 0.4
MAX_RANGES = 10
MODEL_NAME = "EfficientNet-Lite0 patch kNN per frame (offline, video)"
DETECTOR_SETTINGS = {"image_size": 320, "scales": (1.0,), "flip_test": False, "flip_bank": False}

_fitted: dict[str, Any] = {}  # reference hash -> fitted detector (one at a time keeps memory flat)
_fit_lock = threading.Lock()


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    settings = dict(DETECTOR_SETTINGS)
    size = options.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool) and 64 <= size <= 1024:
        settings["image_size"] = size
    return settings


def _reference_key(references: list[tuple[str, np.ndarray]], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    for _, rgb in references:
        digest.update(str(rgb.shape).encode())
        digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


def fitted_detector(
    references: list[tuple[str, np.ndarray]],
    progress=None,
    is_cancelled=None,
    options: dict[str, Any] | None = None,
    sources: list[str] | None = None,
):
    """The video detector fitted on these references (cached for the session). `sources` (the
    video each frame came from) make calibration hold out whole videos, not single frames."""
    from inspector.detector.offline import OfflineDetector

    settings = _settings(options or {})
    key = _reference_key(references, settings) + repr(sources)
    with _fit_lock:
        detector = _fitted.get(key)
        if detector is None:
            detector = OfflineDetector(settings.pop("image_size"), **settings)
            detector.fit([rgb for _, rgb in references], progress=progress, is_cancelled=is_cancelled, sources=sources)
            _fitted.clear()
            _fitted[key] = detector
    return detector


def frame_step(frame_count: int, options: dict[str, Any]) -> int:
    """Score every k-th frame: the profile's ``frame_step`` or what keeps within the budget."""
    wanted = options.get("frame_step")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return wanted
    limit = options.get("max_scored_frames", MAX_SCORED_FRAMES)
    limit = limit if isinstance(limit, int) and limit > 1 else MAX_SCORED_FRAMES
    return max(1, math.ceil(frame_count / limit))


def smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames < 0.5 or values.size < 3:
        return values
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(values, sigma_frames, mode="nearest")


def score_frames(
    source: FrameSource,
    detector: Any,
    step: int,
    progress=None,
    is_cancelled=None,
) -> tuple[np.ndarray, list[int], Any, int]:
    """Raw per-frame scores (interpolated between scored frames), the scored frames, the
    strongest frame's detector result and that frame's index."""
    from inspector.inspection import InspectionCancelledError

    from .tiles import readable_frame

    wanted = list(range(0, source.frame_count, step))
    if wanted[-1] != source.frame_count - 1:
        wanted.append(source.frame_count - 1)
    scored: dict[int, float] = {}
    best, best_index = None, -1
    for k, index in enumerate(wanted):
        if is_cancelled is not None and is_cancelled():
            raise InspectionCancelledError("the video detector was cancelled")
        try:
            found, rgb = readable_frame(source, index, reach=0)
        except Exception:  # noqa: BLE001 - a damaged frame is skipped and interpolated over
            continue
        result = detector.score(rgb)
        scored[found] = result.raw_score
        if best is None or result.raw_score > best.raw_score:
            best, best_index = result, found
        if progress is not None:
            progress((k + 1) / len(wanted))
    if not scored:
        from inspector.imaging import CaseReadError

        raise CaseReadError(f"{source.name}: no frame of the video could be decoded for scoring")
    xs = np.array(sorted(scored))
    raw = np.interp(np.arange(source.frame_count), xs, np.array([scored[x] for x in xs]))
    return raw, [int(x) for x in xs], best, best_index


def frame_ranges(scores: np.ndarray, level: float = 0.5) -> list[tuple[int, int]]:
    """Maximal runs of frames with score >= level, as inclusive (first, last)."""
    above = np.concatenate([[False], scores >= level, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    """Per-frame scores against the profile's normal frames; ranges above the threshold as regions."""
    from inspector.inspection import InspectionError

    source: FrameSource = loaded.data
    references = context.references()
    if not references:
        raise InspectionError(
            "The video detector compares each frame with normal reference frames, and the profile has none. "
            "Add a normal video (or normal frames) to the profile's references."
        )
    started = time.perf_counter()
    detector = fitted_detector(
        references,
        progress=lambda f: context.progress(0.2 * f),
        is_cancelled=context.is_cancelled,
        options=context.options,
        sources=context.reference_sources() or None,
    )
    step = frame_step(source.frame_count, context.options)
    raw, scored, best, best_index = score_frames(
        source, detector, step, progress=lambda f: context.progress(0.2 + 0.8 * f), is_cancelled=context.is_cancelled
    )
    calibration = detector.calibration
    smoothed = smooth(raw, SMOOTH_SECONDS * source.fps)
    scores = calibration.calibrate(smoothed)
    peak = int(np.argmax(scores))
    score = float(scores[peak])
    anomalous = score >= 0.5
    ranges = frame_ranges(scores)
    regions = [
        Region(
            0.0,
            0.0,
            0.0,
            0.0,
            score=float(scores[a : b + 1].max()),
            label="anomalous frames",
            reason=f"frames {a}-{b} deviate from the normal references",
            detail={"frames": [a, b]},
        )
        for a, b in ranges
    ]
    regions.sort(key=lambda r: r.score, reverse=True)
    regions = regions[:MAX_RANGES]
    spans = ", ".join(f"{a}-{b}" for a, b in sorted(tuple(r.detail["frames"]) for r in regions))
    for box in best.regions[:3]:
        regions.append(
            Region(
                box.x0,
                box.y0,
                box.x1,
                box.y1,
                score=box.score,
                label=box.label,
                reason=f"frame {best_index}: {box.reason}",
                detail={"frames": [best_index, best_index]},
            )
        )
    elapsed = time.perf_counter() - started
    per_frame = elapsed / max(1, len(scored))
    if anomalous:
        verdict = f"anomalous: frames {spans} deviate from the {detector.n_references} normal reference frames"
    else:
        verdict = f"looks normal compared with the {detector.n_references} normal reference frames"
    sampling = "every frame" if step == 1 else f"every {step}th frame, interpolated in between"
    explanation = (
        f"Offline detector (no VLM asked): score {score:.2f} ({verdict}; strongest at frame {peak}). Scored {sampling}."
    )
    details = {
        "frame_scores": [round(float(v), 4) for v in scores],
        "scored_frames": scored,
        "frame_step": step,
        "interpolated": step > 1 or len(scored) < source.frame_count,
        "heatmap_frame": best_index,
        "peak_frame": peak,
        "threshold": 0.5,
        "smoothing_s": SMOOTH_SECONDS,
    }
    return OfflineOutcome(
        anomalous=anomalous,
        score=score,
        explanation=explanation,
        regions=regions,
        heatmap=best.heatmap,
        details=details,
        model=MODEL_NAME,
        summary=(
            f"max raw {float(smoothed.max()):.3f}, threshold {calibration.threshold:.3f}, "
            f"{len(scored)} frames scored at {detector.params.image_size} px, {per_frame * 1000:.0f} ms/frame"
        ),
    )
