"""Reading sensor tables (CSV, TSV, Parquet) into a `TimeSeries`, with messages an operator understands.

pyarrow parses text tables (fast enough for millions of rows, and it recognises ISO timestamps);
pandas is the fallback for what pyarrow refuses (decimal commas, ragged quoting). The time column
is found by type, then by name, then by content; without one the sample index is the axis. Values
stay float64 with NaN kept; sampling, gaps and NaN counts are reported in the metadata instead of
being silently repaired, because a gap can be the anomaly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from inspector.imaging import CaseReadError

from . import labels as label_lookup
from .series import AXIS_DATETIME, AXIS_INDEX, AXIS_NUMERIC, LabelWindow, TimeSeries, format_axis_value

TEXT_EXTENSIONS = (".csv", ".tsv", ".tab", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".pq")
EXTENSIONS = (".csv", ".tsv", ".tab", ".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"

_TIME_NAMES = re.compile(
    r"^(?:time|timestamp|datetime|date|ts|t|epoch|unix_?time|date_?time|time_?stamp|"
    r"time_?s|seconds|secs?|elapsed(?:_s)?|time\s*\(s\)|created_?at)$",
    re.IGNORECASE,
)
_TIME_HINT = re.compile(r"time|date|epoch|stamp", re.IGNORECASE)
_LABEL_NAMES = {"label", "labels", "is_anomaly", "anomaly", "is_anomalous", "anomalous", "outlier", "is_outlier"}
_DELIMITERS = (",", ";", "\t", "|")
MAX_GAP_EXAMPLES = 10
HEAD_BYTES = 65536  # what is read first, to sniff the format, the delimiter and the header
MAX_COLUMNS = 10_000  # sensor exports with thousands of channels exist; millions are an attack or a mistake
MAX_PARQUET_BYTES = 1 << 30  # decoded size of a Parquet table, checked from its footer before reading


def read_series(path: Path, origin: Path | None = None) -> tuple[TimeSeries, dict[str, Any]]:
    """Read one file; raises `CaseReadError` with a clear message for anything unusable.

    `origin` is where the file came from when `path` is a copy (labels are looked up there).
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CaseReadError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise CaseReadError(f"{name}: the file is empty (0 bytes); a time series needs a header and rows of numbers")
    suffix = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    if suffix in PARQUET_EXTENSIONS or head.startswith(PARQUET_MAGIC):
        frame, details = _read_parquet(path), {"format": "parquet"}
    else:
        frame, details = _read_text(path, head)
    series, metadata = frame_to_series(frame, name)
    metadata.update(details)
    found = label_lookup.find_labels(path, series, origin)
    if found is not None:
        series.labels, source = found
        metadata["label_source"] = source
    if series.labels:
        metadata["labels"] = [w.to_dict(series) for w in series.labels[:50]]
    if "label_source" in metadata:  # labelled data (NAB, a label column): the case's ground truth
        metadata["ground_truth"] = "anomalous" if series.labels else "normal"
    return series, metadata


# ---------------------------------------------------------------------------------------------- files


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata  # the footer only: sizes are known before any data
        # what the table takes once decoded (8 bytes a value; run-length encoded zeros are tiny on disk)
        unpacked = metadata.num_rows * max(1, metadata.num_columns) * 8
        if metadata.num_columns > MAX_COLUMNS or unpacked > MAX_PARQUET_BYTES:
            raise CaseReadError(
                f"{path.name}: {metadata.num_columns:,} columns, {unpacked / 1e6:,.0f} MB unpacked; a series is "
                f"read with at most {MAX_COLUMNS:,} columns and {MAX_PARQUET_BYTES / 1e6:,.0f} MB"
            )
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CaseReadError(f"{path.name}: not a readable Parquet file ({_first_line(exc)})") from None
    return table.to_pandas()


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return controls > max(2, len(head) // 100)


def _decode(head: bytes, name: str) -> str:
    if _looks_binary(head):
        raise CaseReadError(f"{name}: the file holds binary data, not a text table (CSV/TSV) or Parquet file")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return head.decode(encoding)
        except UnicodeDecodeError as exc:
            if encoding == "utf-8-sig" and exc.start >= len(head) - 4:  # a character cut by the 64 KB head
                return head[: exc.start].decode(encoding)
    return head.decode("latin-1")


def _encoding_of(head: bytes) -> str:
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        return "utf-8" if exc.start >= len(head) - 4 else "cp1252"


def _data_lines(text: str, limit: int = 30) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines[:limit]


def _delimiter(lines: list[str], suffix: str) -> str:
    if suffix in (".tsv", ".tab"):
        return "\t"
    best, best_count = ",", 0
    for candidate in _DELIMITERS:
        counts = [line.count(candidate) for line in lines[:20]]
        if counts and min(counts) > 0 and max(counts) == min(counts) and counts[0] > best_count:
            best, best_count = candidate, counts[0]
    if best_count == 0:  # ragged or one column: the most frequent candidate in the header line
        header = lines[0] if lines else ""
        best = max(_DELIMITERS, key=header.count) if header and any(c in header for c in _DELIMITERS) else ","
    return best


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
        return True
    except ValueError:
        return False


def _read_text(path: Path, head: bytes):
    """A delimited text table -> DataFrame, plus what was detected about it."""
    import pandas as pd

    name = path.name
    text = _decode(head, name)
    lines = _data_lines(text)
    if not lines:
        raise CaseReadError(f"{name}: the file has no content (only blank or comment lines)")
    sep = _delimiter(lines, path.suffix.lower())
    fields = lines[0].split(sep)
    # a parser would spend minutes on 10 million columns: count them in the 64 KB head, and refuse a
    # first line that does not even end there
    if len(fields) > MAX_COLUMNS or (len(head) >= HEAD_BYTES and not re.search(rb"[\r\n]", head)):
        shown = f"{len(fields):,}" if len(fields) > MAX_COLUMNS else "more than fit in its first 64 KB"
        raise CaseReadError(f"{name}: the table has {shown} columns; a series is read with at most {MAX_COLUMNS:,}")
    has_header = not all(_is_number(f) for f in fields if f.strip())
    decimal_comma = sep == ";" and any(re.search(r"\d,\d", line) for line in lines[1:])
    comments = any(line.lstrip().startswith("#") for line in text.splitlines()[:50])
    details: dict[str, Any] = {"format": "tsv" if sep == "\t" else "csv", "delimiter": sep, "header": has_header}
    if decimal_comma:
        details["decimal"] = ","
    encoding = _encoding_of(head)
    frame = None
    if not decimal_comma and not comments:
        frame = _read_text_pyarrow(path, sep, has_header, encoding)
    if frame is None:
        try:
            frame = pd.read_csv(
                path,
                sep=sep,
                header=0 if has_header else None,
                comment="#",
                decimal="," if decimal_comma else ".",
                encoding=encoding,
                skip_blank_lines=True,
                low_memory=False,
            )
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise CaseReadError(f"{name}: the table cannot be parsed ({_first_line(exc)})") from None
        except pd.errors.EmptyDataError:
            raise CaseReadError(f"{name}: the file has no columns (nothing to read)") from None
        if not has_header:
            frame.columns = [f"column {i + 1}" for i in range(frame.shape[1])]
    return frame, details


def _read_text_pyarrow(path: Path, sep: str, has_header: bool, encoding: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read_options = pacsv.ReadOptions(encoding=encoding, autogenerate_column_names=not has_header, block_size=1 << 24)
    parse_options = pacsv.ParseOptions(delimiter=sep)
    convert_options = pacsv.ConvertOptions(strings_can_be_null=True)
    try:
        table = pacsv.read_csv(
            path, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
    except (pa.ArrowException, ValueError, OSError):
        return None  # pandas gets a try, and produces the message when it fails too
    frame = table.to_pandas()
    if not has_header:
        frame.columns = [f"column {i + 1}" for i in range(frame.shape[1])]
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------- columns


def _to_epoch_seconds(column) -> np.ndarray:
    """A datetime-like pandas Series -> float64 epoch seconds (UTC), NaN where missing."""
    import pandas as pd

    if getattr(column.dt, "tz", None) is not None:
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    as_ns = column.astype("datetime64[ns]")
    values = as_ns.to_numpy().astype("int64").astype(np.float64) / 1e9
    values[pd.isna(as_ns).to_numpy()] = np.nan
    return values


def _parse_datetimes(column) -> np.ndarray | None:
    """Text that is mostly dates/times -> epoch seconds; None when it is not a time column."""
    import warnings

    import pandas as pd

    sample = column.dropna().astype(str).head(200)
    if sample.empty or sample.str.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?\s*").all():
        return None  # plain numbers are not dates here (numeric time columns are handled by name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pd.to_datetime(sample, errors="coerce").notna().mean() < 0.9:
            return None
        parsed = pd.to_datetime(column, errors="coerce")
        if parsed.notna().sum() < 0.9 * column.notna().sum():
            parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    if parsed.notna().mean() < 0.5:
        return None
    return _to_epoch_seconds(parsed)


def _numeric_time(column, name: str) -> tuple[np.ndarray, str] | None:
    """A numeric column named like a time axis: epoch seconds/milliseconds, or its own units."""
    import pandas as pd

    if not (_TIME_NAMES.match(name.strip()) or _TIME_HINT.search(name)):
        return None
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < max(1, 0.9 * values.size):
        return None
    middle = float(np.median(finite))
    if _TIME_HINT.search(name) and 1e8 <= middle <= 4.2e9:
        return values, AXIS_DATETIME  # Unix epoch seconds
    if _TIME_HINT.search(name) and 1e11 <= middle <= 4.2e12:
        return values / 1000.0, AXIS_DATETIME  # Unix epoch milliseconds
    return values, AXIS_NUMERIC


def _find_time(frame) -> tuple[str | None, np.ndarray | None, str]:
    import pandas as pd

    for name in frame.columns:  # 1. a column already typed as dates
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            return name, _to_epoch_seconds(column), AXIS_DATETIME
    for name in frame.columns:  # 2. text that parses as dates (named columns first)
        column = frame[name]
        if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            if _TIME_HINT.search(str(name)) or _TIME_NAMES.match(str(name)) or name == frame.columns[0]:
                parsed = _parse_datetimes(column)
                if parsed is not None:
                    return name, parsed, AXIS_DATETIME
    for name in frame.columns:  # 3. a numeric column named like a time axis
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            found = _numeric_time(column, str(name))
            if found is not None:
                return name, found[0], found[1]
    return None, None, AXIS_INDEX


def _label_column(frame, name: str) -> np.ndarray | None:
    """A 0/1 anomaly label column (as in many public sets) -> bool array; None if it is not one."""
    import pandas as pd

    if str(name).strip().lower() not in _LABEL_NAMES:
        return None
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not np.isin(finite, (0.0, 1.0)).all():
        return None
    return np.nan_to_num(values, nan=0.0) > 0.5


def _value_column(column) -> np.ndarray | None:
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = column.notna()
    if not present.any():
        return None
    numbers = pd.to_numeric(column.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = np.isfinite(numbers)
    if parsed.sum() < 0.5 * present.sum():
        return None
    return numbers


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) of the runs of True."""
    if mask.size == 0:
        return []
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def frame_to_series(frame, name: str) -> tuple[TimeSeries, dict[str, Any]]:
    """A DataFrame -> TimeSeries + JSON-safe metadata (columns, sampling, gaps, NaN counts)."""
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if frame.shape[1] == 0:
        raise CaseReadError(f"{name}: the file has no columns (nothing to read)")
    if frame.shape[0] == 0:
        raise CaseReadError(f"{name}: the table has a header ({', '.join(columns[:8])}) but no data rows")
    time_name, time, axis = _find_time(frame)
    label_mask = None
    values: list[np.ndarray] = []
    kept: list[str] = []
    skipped: list[str] = []
    for column in columns:
        if column == time_name:
            continue
        if label_mask is None and (mask := _label_column(frame, column)) is not None:
            label_mask, label_name = mask, column
            continue
        converted = _value_column(frame[column])
        if converted is None:
            skipped.append(column)
        else:
            values.append(converted)
            kept.append(column)
    if not values:
        listed = ", ".join(columns[:10]) + (" ..." if len(columns) > 10 else "")
        raise CaseReadError(
            f"{name}: no numeric column found (columns: {listed}); a time series needs at least one column of numbers"
        )
    matrix = np.column_stack(values).astype(np.float64, copy=False)
    metadata: dict[str, Any] = {"name": name}
    n_rows = matrix.shape[0]
    if time is None:
        time = np.arange(n_rows, dtype=np.float64)
    else:
        missing = ~np.isfinite(time)
        if missing.any():
            metadata["rows_without_time"] = int(missing.sum())
            keep = ~missing
            time, matrix = time[keep], matrix[keep]
            label_mask = label_mask[keep] if label_mask is not None else None
        if time.size > 1 and np.any(np.diff(time) < 0):
            order = np.argsort(time, kind="stable")
            time, matrix = time[order], matrix[order]
            label_mask = label_mask[order] if label_mask is not None else None
            metadata["sorted_by_time"] = True
    if time.size == 0:
        raise CaseReadError(f"{name}: no row has a readable time in column {time_name!r}")
    time = np.ascontiguousarray(time, dtype=np.float64)
    series = TimeSeries(
        time=time, values=np.ascontiguousarray(matrix), columns=kept, axis=axis, time_name=time_name or "", name=name
    )
    if label_mask is not None:
        series.labels = [LabelWindow(a, b, f"label column {label_name!r}") for a, b in _runs(label_mask)]
        metadata["label_source"] = f"label column {label_name!r}"
    metadata.update(describe(series))
    if skipped:
        metadata["skipped_columns"] = skipped
    return series, metadata


def describe(series: TimeSeries) -> dict[str, Any]:
    """Length, time range, sampling regularity, median step, gaps and NaN counts (JSON-safe)."""
    time, n = series.time, series.length
    info: dict[str, Any] = {
        "columns": list(series.columns),
        "length": n,
        "axis": series.axis,
        "time_column": series.time_name or None,
        "time_range": [format_axis_value(time[0], series.axis), format_axis_value(time[-1], series.axis)],
        "nan_counts": {c: int(np.isnan(series.values[:, i]).sum()) for i, c in enumerate(series.columns)},
    }
    if n < 2:
        info.update(sampling="single sample", median_step=None, gaps=0)
        return info
    steps = np.diff(time)
    positive = steps[steps > 0]
    median = float(np.median(positive)) if positive.size else 0.0
    info["duplicate_times"] = int((steps == 0).sum())
    regular_fraction = float(np.mean(np.abs(steps - median) <= 0.01 * median)) if median > 0 else 0.0
    info["sampling"] = "regular" if regular_fraction >= 0.95 else "irregular"
    info["regular_fraction"] = round(regular_fraction, 4)
    info["median_step"] = median
    if series.axis == AXIS_DATETIME:
        info["median_step_text"] = duration_text(median)
    gap_factor = 1.5 if info["sampling"] == "regular" else 5.0
    gap_at = np.flatnonzero(steps > gap_factor * median) if median > 0 else np.array([], dtype=int)
    info["gaps"] = int(gap_at.size)
    if gap_at.size:
        largest = gap_at[np.argsort(steps[gap_at])[::-1][:MAX_GAP_EXAMPLES]]
        info["gap_examples"] = [
            [format_axis_value(time[i], series.axis), format_axis_value(time[i + 1], series.axis)]
            for i in sorted(largest)
        ]
        info["largest_gap"] = float(steps[gap_at].max())
    return info


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"


def sniff(path: Path, head: bytes) -> bool:
    """Parquet by its magic bytes; text tables only by extension (too many things are text)."""
    return head.startswith(PARQUET_MAGIC) and path.suffix.lower() in (*PARQUET_EXTENSIONS, "")


__all__ = ["EXTENSIONS", "LabelWindow", "describe", "frame_to_series", "read_series", "sniff"]
