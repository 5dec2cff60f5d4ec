"""The built-in offline anomaly detector (no VLM, no network): see `offline` for the method.

Heavy imports (torch) happen on first use of the names below, so importing
``inspector.detector`` stays cheap for code that only needs the types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.detector.offline import (
        CancelledError,
        DetectorParams,
        DetectorResult,
        OfflineDetector,
        classify_imagenet,
        fit_cache_key,
    )

__all__ = [
    "CancelledError",
    "DetectorParams",
    "DetectorResult",
    "OfflineDetector",
    "classify_imagenet",
    "fit_cache_key",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from inspector.detector import offline

        return getattr(offline, name)
    raise AttributeError(f"module 'inspector.detector' has no attribute {name!r}")
