"""PLY reader (ASCII, binary little and big endian): vertices with optional colours and normals.

Only the vertex element is decoded; faces of a mesh PLY are ignored. The header is trusted only
as far as the body backs it: a header that promises more vertices than the body holds is an
error with both numbers in the message, never a silently short or garbage cloud.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from inspector.imaging import CaseReadError

from .fields import split_fields

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_FORMATS = {
    "ascii": "PLY ASCII",
    "binary_little_endian": "PLY binary little endian",
    "binary_big_endian": "PLY binary big endian",
}
MAX_HEADER = 1 << 20


class _Element:
    def __init__(self, name: str, count: int):
        self.name = name
        self.count = count
        self.properties: list[tuple[str, str]] = []  # (name, numpy type code)
        self.has_list = False


def read_ply(path: Path):
    """-> (points, colors, normals, format label, field names)."""
    name = path.name
    with path.open("rb") as fh:
        data = fh.read()
    if not data.startswith(b"ply"):
        raise CaseReadError(f"{name}: not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header", 0, MAX_HEADER)
    if end < 0:
        raise CaseReadError(f"{name}: the PLY header has no 'end_header' line (damaged or not a PLY file)")
    newline = data.find(b"\n", end)
    body_start = len(data) if newline < 0 else newline + 1
    header = data[:end].decode("ascii", errors="replace").replace("\r", "").split("\n")
    fmt, elements = _parse_header(header, name)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        raise CaseReadError(f"{name}: the PLY header declares no 'vertex' element")
    if vertex.has_list:
        raise CaseReadError(f"{name}: the PLY vertex element has list properties, which this reader does not support")
    if vertex.count == 0:
        raise CaseReadError(f"{name}: the PLY header declares 0 vertices")
    if fmt == "ascii":
        table = _read_ascii(data[body_start:], elements, vertex, name)
    else:
        table = _read_binary(data, body_start, elements, vertex, "<" if fmt == "binary_little_endian" else ">", name)
    points, colors, normals, fields = split_fields({p: table[p] for p, _ in vertex.properties}, name)
    return points, colors, normals, _FORMATS[fmt], fields


def _parse_header(lines: list[str], name: str) -> tuple[str, list[_Element]]:
    fmt = None
    elements: list[_Element] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise CaseReadError(f"{name}: unknown PLY format in header line {number}: {line.strip()!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise CaseReadError(f"{name}: malformed PLY element line {number}: {line.strip()!r}")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise CaseReadError(f"{name}: PLY property before any element (header line {number})")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _TYPES or words[3] not in _TYPES:
                    raise CaseReadError(f"{name}: unknown PLY list type in header line {number}")
                elements[-1].has_list = True
                elements[-1].properties.append((words[4], "list"))
            elif len(words) == 3 and words[1] in _TYPES:
                elements[-1].properties.append((words[2], _TYPES[words[1]]))
            else:
                raise CaseReadError(f"{name}: malformed PLY property in header line {number}: {line.strip()!r}")
        else:
            raise CaseReadError(f"{name}: unexpected PLY header line {number}: {line.strip()!r}")
    if fmt is None:
        raise CaseReadError(f"{name}: the PLY header has no 'format' line")
    return fmt, elements


def _read_binary(
    data: bytes, offset: int, elements: list[_Element], vertex: _Element, order: str, name: str
) -> np.ndarray:
    for element in elements:
        if element is vertex:
            break
        if element.has_list:
            raise CaseReadError(
                f"{name}: the PLY element '{element.name}' with list properties comes before "
                "the vertices; this reader cannot skip it in binary files"
            )
        offset += element.count * np.dtype([(p, order + t) for p, t in element.properties]).itemsize
    dtype = np.dtype([(p, order + t) for p, t in vertex.properties])
    available = max(0, len(data) - offset)
    have = available // dtype.itemsize
    if have < vertex.count:
        raise CaseReadError(
            f"{name}: the PLY header declares {vertex.count:,} vertices ({vertex.count * dtype.itemsize:,} bytes) "
            f"but the file holds only {have:,} complete vertices ({available:,} bytes): the file is truncated "
            "or its header is wrong"
        )
    return np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)


def _read_ascii(body: bytes, elements: list[_Element], vertex: _Element, name: str) -> np.ndarray:
    lines = body.split(b"\n")
    start = 0
    for element in elements:
        if element is vertex:
            break
        start += element.count
    rows = [line for line in lines[start : start + vertex.count]]
    while rows and not rows[-1].strip():
        rows.pop()
    if len(rows) < vertex.count:
        raise CaseReadError(
            f"{name}: the PLY header declares {vertex.count:,} vertices but the file holds only {len(rows):,} "
            "vertex lines: the file is truncated or its header is wrong"
        )
    columns = len(vertex.properties)
    try:
        values = np.loadtxt(io.BytesIO(b"\n".join(rows)), dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        raise CaseReadError(f"{name}: a PLY vertex line is not a row of {columns} numbers ({exc})") from None
    if values.shape != (vertex.count, columns):
        if values.shape[0] == vertex.count and values.shape[1] > columns:
            values = values[:, :columns]  # trailing extras (some writers append face data oddly)
        else:
            raise CaseReadError(
                f"{name}: PLY vertex lines have {values.shape[1]} values, the header declares {columns} properties"
            )
    table = np.empty(vertex.count, dtype=[(p, "f8") for p, _ in vertex.properties])
    for i, (p, _) in enumerate(vertex.properties):
        table[p] = values[:, i]
    return table
