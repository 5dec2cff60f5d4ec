"""Known anomaly windows for a series: the NAB layout, remembered by content for embedded copies.

NAB keeps its series at ``<root>/data/<group>/<name>.csv`` and the windows of all of them in
``<root>/labels/combined_windows.json`` under the key ``"<group>/<name>.csv"``, as timestamps.
Windows become inclusive sample ranges: from the first sample at or after the window's start to the
last sample at or before its end.

The workstation reads a small case back from a copy embedded in the project (a temporary file of
the same name, away from the NAB folder); it passes the original location (`read_copy`), where the
labels are looked up. Labels found once are also remembered for the session by the file's content
hash, for a copy whose original location has moved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np

from .series import AXIS_DATETIME, LabelWindow, TimeSeries

log = logging.getLogger(__name__)

NAB_WINDOWS = Path("labels") / "combined_windows.json"
_REMEMBERED: dict[str, tuple[list[tuple[float, float]], str]] = {}
_LOCK = threading.Lock()
_MAX_REMEMBERED = 512


def nab_key(path: Path) -> tuple[Path, str] | None:
    """(labels file, key) for a file inside an NAB-style tree, or None."""
    path = Path(path)
    parts = path.resolve().parts if path.exists() else path.parts
    for depth in range(2, min(len(parts), 6)):
        root = Path(*parts[: len(parts) - depth])
        if parts[len(parts) - depth] != "data":
            continue
        labels = root / NAB_WINDOWS
        if labels.is_file():
            return labels, "/".join(parts[len(parts) - depth + 1 :])
    return None


def _file_digest(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _load_windows(labels_file: Path, key: str) -> list[tuple[float, float]] | None:
    try:
        table = json.loads(labels_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("NAB labels %s cannot be read: %s", labels_file, exc)
        return None
    if key not in table:
        return None
    import pandas as pd

    windows = []
    for pair in table[key]:
        start, end = pd.to_datetime(pair[0]), pd.to_datetime(pair[1])
        windows.append((start.value / 1e9, end.value / 1e9))
    return windows


def to_label_windows(series: TimeSeries, windows: list[tuple[float, float]], source: str) -> list[LabelWindow]:
    out = []
    for t0, t1 in windows:
        i0 = int(np.searchsorted(series.time, t0, side="left"))
        i1 = int(np.searchsorted(series.time, t1, side="right")) - 1
        if i0 <= i1 and i0 < series.length and i1 >= 0:
            out.append(LabelWindow(i0, i1, source))
    return out


def find_labels(path: Path, series: TimeSeries, origin: Path | None = None) -> tuple[list[LabelWindow], str] | None:
    """NAB windows for this file: from the tree around `origin` (the original location of a copy)
    or `path`, else remembered from an earlier read of the same bytes."""
    if series.axis != AXIS_DATETIME:
        return None
    found = (nab_key(origin) if origin is not None else None) or nab_key(path)
    digest = _file_digest(path)
    if found is not None:
        labels_file, key = found
        windows = _load_windows(labels_file, key)
        if windows is not None:
            source = f"NAB {labels_file.parent.name}/{labels_file.name} [{key}]"
            if digest is not None:
                with _LOCK:
                    if len(_REMEMBERED) >= _MAX_REMEMBERED:
                        _REMEMBERED.pop(next(iter(_REMEMBERED)))
                    _REMEMBERED[digest] = (windows, source)
            return to_label_windows(series, windows, source), source
    if digest is not None:
        with _LOCK:
            remembered = _REMEMBERED.get(digest)
        if remembered is not None:
            windows, source = remembered
            return to_label_windows(series, windows, source), source
    return None
