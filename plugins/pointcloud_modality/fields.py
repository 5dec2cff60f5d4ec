"""Named columns (PLY properties, PCD fields, NPZ keys, text headers) -> points, colours, normals.

Every format names the same things differently (red / r / diffuse_red, nx / normal_x); this is
the one place that knows the aliases, so every reader reports the same `fields` list.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from inspector.imaging import CaseReadError

_XYZ = (("x",), ("y",), ("z",))
_RGB = (("red", "r", "diffuse_red"), ("green", "g", "diffuse_green"), ("blue", "b", "diffuse_blue"))
_NORMALS = (("nx", "normal_x"), ("ny", "normal_y"), ("nz", "normal_z"))


def _pick(columns: Mapping[str, np.ndarray], aliases: tuple[tuple[str, ...], ...]) -> list[str] | None:
    lower = {k.lower(): k for k in columns}
    found = []
    for options in aliases:
        key = next((lower[o] for o in options if o in lower), None)
        if key is None:
            return None
        found.append(key)
    return found


def split_fields(columns: Mapping[str, np.ndarray], name: str):
    """-> (points N x 3, colors N x 3 or None, normals N x 3 or None, field list)."""
    xyz = _pick(columns, _XYZ)
    if xyz is None:
        raise CaseReadError(f"{name}: no x, y, z coordinates found (fields: {', '.join(columns) or 'none'})")
    points = np.stack([np.asarray(columns[k], dtype=np.float32) for k in xyz], axis=1)
    fields = ["x", "y", "z"]
    colors = None
    rgb = _pick(columns, _RGB)
    if rgb is not None:
        colors = np.stack([np.asarray(columns[k]) for k in rgb], axis=1)
        fields += ["red", "green", "blue"]
    else:
        packed = next((k for k in columns if k.lower() in ("rgb", "rgba")), None)
        if packed is not None:
            colors = unpack_rgb(np.asarray(columns[packed]))
            fields += ["red", "green", "blue"]
    normals = None
    nrm = _pick(columns, _NORMALS)
    if nrm is not None:
        normals = np.stack([np.asarray(columns[k], dtype=np.float32) for k in nrm], axis=1)
        fields += ["nx", "ny", "nz"]
    return points, colors, normals, fields


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL packs 8-bit r, g, b into one 32-bit value (often typed as a float): unpack to N x 3."""
    arr = np.ascontiguousarray(packed)
    if arr.dtype.itemsize != 4:
        arr = arr.astype(np.uint32)
    value = arr.view(np.uint32)
    return np.stack([(value >> 16) & 255, (value >> 8) & 255, value & 255], axis=1).astype(np.uint8)


def split_columns(table: np.ndarray, name: str):
    """An unnamed N x C numeric table: xyz, then colours and/or normals recognised by their values.

    3 columns: xyz. 4: xyz + intensity (ignored). 6: xyz + normals if rows of columns 3-5 have
    unit length, else colours. 7: xyz + intensity + colours (Leica PTS). 9: xyz + two triples, the
    unit-length one being the normals.
    """
    c = table.shape[1]
    if c < 3:
        raise CaseReadError(f"{name}: rows have {c} values; a point needs at least x, y, z")
    points = table[:, :3]
    colors = normals = None
    fields = ["x", "y", "z"]
    triples: list[np.ndarray] = []
    if c == 4:
        fields.append("intensity (ignored)")
    elif c == 6:
        triples = [table[:, 3:6]]
    elif c == 7:
        fields.append("intensity (ignored)")
        triples = [table[:, 4:7]]
    elif c >= 9:
        triples = [table[:, 3:6], table[:, 6:9]]
    for triple in triples:
        if normals is None and _unit_rows(triple):
            normals = triple
            fields += ["nx", "ny", "nz"]
        elif colors is None:
            colors = triple
            fields += ["red", "green", "blue"]
    return points, colors, normals, fields


def _unit_rows(triple: np.ndarray) -> bool:
    sample = np.asarray(triple[:: max(1, triple.shape[0] // 2000)], dtype=np.float64)
    norms = np.sqrt((sample**2).sum(axis=1))
    return bool(sample.size) and bool(np.median(np.abs(norms - 1.0)) < 0.02) and float(np.abs(sample).max()) <= 1.001
