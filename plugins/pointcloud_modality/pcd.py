"""PCD reader (Point Cloud Library): DATA ascii, binary and binary_compressed (LZF).

binary_compressed stores the fields one after another (all x, then all y, ...) compressed with
LZF. No LZF library ships with the workstation, so `lzf_decompress` implements the (small,
documented) liblzf format in Python: literal runs are copied as slices, so the loop runs once per
run or back-reference, about 0.5 s for a million points.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from inspector.imaging import CaseReadError

from .fields import split_fields

_KINDS = {
    ("F", 4): "f4",
    ("F", 8): "f8",
    ("U", 1): "u1",
    ("U", 2): "u2",
    ("U", 4): "u4",
    ("U", 8): "u8",
    ("I", 1): "i1",
    ("I", 2): "i2",
    ("I", 4): "i4",
    ("I", 8): "i8",
}
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


def read_pcd(path: Path):
    """-> (points, colors, normals, format label, field names, organized (h, w) or None)."""
    name = path.name
    data = path.read_bytes()
    header, body_start = _header(data, name)
    fields = header["FIELDS"]
    n_fields = len(fields)
    sizes = _ints(header.get("SIZE"), n_fields, "SIZE", name)
    types = header.get("TYPE") or []
    counts = _ints(header.get("COUNT"), n_fields, "COUNT", name) if "COUNT" in header else [1] * n_fields
    if len(types) != n_fields:
        raise CaseReadError(f"{name}: PCD header lists {n_fields} FIELDS but {len(types)} TYPE entries")
    try:
        codes = [_KINDS[(t.upper(), s)] for t, s in zip(types, sizes, strict=True)]
    except KeyError:
        pairs = list(zip(types, sizes, strict=True))
        raise CaseReadError(f"{name}: unsupported PCD TYPE/SIZE combination {pairs}") from None
    width = _one_int(header, "WIDTH", name)
    height = _one_int(header, "HEIGHT", name) if "HEIGHT" in header else 1
    n = _one_int(header, "POINTS", name) if "POINTS" in header else width * height
    if n != width * height:
        raise CaseReadError(f"{name}: PCD header says POINTS {n:,} but WIDTH x HEIGHT is {width * height:,}")
    if n == 0:
        raise CaseReadError(f"{name}: the PCD header declares 0 points")
    mode = (header.get("DATA") or [""])[0].lower()
    dtype = np.dtype(
        [(f, "<" + c, (k,)) if k > 1 else (f, "<" + c) for f, c, k in zip(_unique(fields), codes, counts, strict=True)]
    )
    if mode == "ascii":
        table = _ascii(data[body_start:], dtype, n, name)
    elif mode == "binary":
        available = len(data) - body_start
        if available < n * dtype.itemsize:
            raise CaseReadError(
                f"{name}: the PCD header declares {n:,} points ({n * dtype.itemsize:,} bytes) but the file holds "
                f"only {available // dtype.itemsize:,} complete points: the file is truncated or its header is wrong"
            )
        table = np.frombuffer(data, dtype=dtype, count=n, offset=body_start)
    elif mode == "binary_compressed":
        table = _compressed(data[body_start:], dtype, n, name)
    else:
        raise CaseReadError(f"{name}: unknown PCD DATA mode {mode!r} (expected ascii, binary or binary_compressed)")
    columns = {f: table[f] for f in dtype.names if table[f].ndim == 1}
    points, colors, normals, names = split_fields(columns, name)
    organized = (height, width) if height > 1 else None
    return points, colors, normals, f"PCD {mode}", names, organized


def _header(data: bytes, name: str) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    offset = 0
    while offset < min(len(data), 1 << 16):
        end = data.find(b"\n", offset)
        if end < 0:
            break
        line = data[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        words = line.split()
        key = words[0].upper()
        if key not in _KEYS:
            shown = line[:60] if line[:60].isprintable() else "(binary data)"
            raise CaseReadError(f"{name}: not a readable PCD header: unexpected line {shown!r}")
        header[key] = words[1:]
        if key == "DATA":
            if "FIELDS" not in header or not header["FIELDS"]:
                raise CaseReadError(f"{name}: the PCD header has no FIELDS line")
            return header, offset
    raise CaseReadError(f"{name}: the PCD header has no DATA line (damaged or not a PCD file)")


def _ints(values: list[str] | None, n: int, key: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in values or []]
    except ValueError:
        raise CaseReadError(f"{name}: PCD {key} entries must be integers ({values})") from None
    if len(out) != n:
        raise CaseReadError(f"{name}: PCD header lists {n} FIELDS but {len(out)} {key} entries")
    return out


def _one_int(header: dict[str, list[str]], key: str, name: str) -> int:
    try:
        return int(header[key][0])
    except (KeyError, IndexError, ValueError):
        raise CaseReadError(f"{name}: the PCD header needs a numeric {key}") from None


def _unique(fields: list[str]) -> list[str]:
    """PCL pads with fields named '_'; make repeated names unique for the structured dtype."""
    seen: dict[str, int] = {}
    out = []
    for f in fields:
        seen[f] = seen.get(f, 0) + 1
        out.append(f if seen[f] == 1 else f"{f}__{seen[f]}")
    return out


def _ascii(body: bytes, dtype: np.dtype, n: int, name: str) -> np.ndarray:
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) < n:
        raise CaseReadError(
            f"{name}: the PCD header declares {n:,} points but the file holds only "
            f"{len(lines):,} point lines: the file is truncated or its header is wrong"
        )
    width = sum(int(np.prod(dtype[f].shape or (1,))) for f in dtype.names)
    try:
        values = np.loadtxt(io.BytesIO(b"\n".join(lines[:n])), dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        raise CaseReadError(f"{name}: a PCD point line is not a row of {width} numbers ({exc})") from None
    if values.shape[1] != width:
        raise CaseReadError(f"{name}: PCD point lines have {values.shape[1]} values, the header declares {width}")
    table = np.empty(n, dtype=dtype)
    col = 0
    for f in dtype.names:
        k = int(np.prod(dtype[f].shape or (1,)))
        part = values[:, col : col + k]
        if f.lower() in ("rgb", "rgba") and dtype[f].kind == "f":
            # ASCII PCDs write the packed colour as the float that has the same bits, or as an integer
            packed = part[:, 0]
            as_int = packed.astype(np.uint32) if np.all(packed == np.floor(packed)) and packed.max() > 1 else None
            table[f] = as_int.view(np.float32) if as_int is not None else packed.astype(np.float32)
        else:
            table[f] = part[:, 0] if k == 1 else part
        col += k
    return table


# LZF cannot pack more than about 88:1 (a 3-byte back-reference copies at most 264 bytes); a header
# that claims more, or more than a gigabyte, is refused before anything is unpacked.
LZF_MAX_RATIO = 100
MAX_RAW_BYTES = 1 << 30


def _compressed(body: bytes, dtype: np.dtype, n: int, name: str) -> np.ndarray:
    if len(body) < 8:
        raise CaseReadError(f"{name}: the compressed PCD body is missing its size header (file truncated)")
    compressed_size, raw_size = np.frombuffer(body[:8], dtype="<u4")
    if raw_size != n * dtype.itemsize:
        raise CaseReadError(
            f"{name}: the compressed PCD body unpacks to {int(raw_size):,} bytes but {n:,} points "
            f"need {n * dtype.itemsize:,}: the header is wrong"
        )
    if raw_size > MAX_RAW_BYTES or raw_size > LZF_MAX_RATIO * max(1, int(compressed_size)):
        raise CaseReadError(
            f"{name}: the compressed PCD body claims {int(raw_size):,} bytes unpacked from {int(compressed_size):,}; "
            f"at most {MAX_RAW_BYTES:,} bytes and a ratio of {LZF_MAX_RATIO} are read"
        )
    if len(body) - 8 < compressed_size:
        raise CaseReadError(
            f"{name}: the compressed PCD body is truncated ({len(body) - 8:,} of {int(compressed_size):,} bytes)"
        )
    try:
        raw = lzf_decompress(body[8 : 8 + int(compressed_size)], int(raw_size))
    except ValueError as exc:
        raise CaseReadError(f"{name}: the compressed PCD data is damaged ({exc})") from None
    table = np.empty(n, dtype=dtype)
    offset = 0
    for f in dtype.names:
        sub = dtype[f]
        size = n * sub.itemsize
        table[f] = np.frombuffer(
            raw, dtype=sub.base.newbyteorder("<"), count=n * int(np.prod(sub.shape or (1,))), offset=offset
        ).reshape((n, *sub.shape))
        offset += size
    return table


def lzf_decompress(src: bytes, expected: int) -> bytes:
    """Decode liblzf data: control byte < 32 -> that many + 1 literal bytes; otherwise a
    back-reference of length (ctrl >> 5) + 2 (7 -> + next byte) at distance ((ctrl & 31) << 8 | next) + 1."""
    out = bytearray()
    i, n = 0, len(src)
    while i < n:
        ctrl = src[i]
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if i + run > n:
                raise ValueError("literal run past the end of the data")
            out += src[i : i + run]
            i += run
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= n:
                raise ValueError("back-reference length past the end of the data")
            length += src[i]
            i += 1
        if i >= n:
            raise ValueError("back-reference offset past the end of the data")
        ref = len(out) - ((ctrl & 0x1F) << 8) - src[i] - 1
        i += 1
        length += 2
        if ref < 0:
            raise ValueError("back-reference before the start of the data")
        if ref + length <= len(out):
            out += out[ref : ref + length]
        else:  # overlapping copy repeats the pattern
            for k in range(length):
                out.append(out[ref + k])
        if len(out) > expected:
            raise ValueError("data unpacks to more bytes than declared")
    if len(out) != expected:
        raise ValueError(f"data unpacks to {len(out):,} bytes, {expected:,} declared")
    return bytes(out)
