"""Format dispatch and sniffing: which reader a file goes to, and the LoadedCase it becomes.

Sniffing is deliberately strict (this plugin asks before the image plugin, see `register`): it
claims a TIFF only when its first page is float with three samples (an organized XYZ scan), a
NPY only when it is an N x 3..12 float table or an H x W x 3 grid, and a .txt only when its first
lines are rows of 3 to 12 whitespace-separated numbers. Everything else is left to the other
modalities.
"""

from __future__ import annotations

import ast
import logging
import re
import struct
from pathlib import Path

from inspector.imaging import CaseReadError
from inspector.model import LoadedCase

from .cloud import loaded_case, make_cloud

TEXT_EXTENSIONS = (".xyz", ".pts", ".xyzrgb", ".xyzn", ".asc")
EXTENSIONS = (".ply", ".pcd", *TEXT_EXTENSIONS, ".npz")
_ANY_ROW = re.compile(r"^\s*([+-]?[\d.]+(?:[eE][+-]?\d+)?\s*[,;\s]\s*){2,11}[+-]?[\d.]+(?:[eE][+-]?\d+)?\s*$")
_ROW = re.compile(r"^\s*([+-]?[\d.]+(?:[eE][+-]?\d+)?\s+){2,11}[+-]?[\d.]+(?:[eE][+-]?\d+)?\s*$")


def read(path: Path) -> LoadedCase:
    path = Path(path)
    name = path.name
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise CaseReadError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    suffix = path.suffix.lower()
    extra: dict = {}
    more: dict = {}
    organized = None
    try:
        if head.startswith(b"ply") or suffix == ".ply":
            from .ply import read_ply

            points, colors, normals, fmt, fields = read_ply(path)
        elif _is_pcd(head) or suffix == ".pcd":
            from .pcd import read_pcd

            points, colors, normals, fmt, fields, organized = read_pcd(path)
        elif head.startswith((b"II*\x00", b"MM\x00*")) or suffix in (".tif", ".tiff"):
            from .simple_formats import read_xyz_tiff

            points, colors, normals, fmt, fields, organized, pixel_index, source = read_xyz_tiff(path)
            extra["pixel_index"] = pixel_index
            if source:
                more["colors_from"] = source
        elif head.startswith(b"\x93NUMPY"):
            from .simple_formats import read_npy

            points, colors, normals, fmt, fields, organized = read_npy(path)
        elif head.startswith(b"PK\x03\x04") or suffix == ".npz":
            from .simple_formats import read_npz

            points, colors, normals, fmt, fields, organized = read_npz(path)
        else:
            from .simple_formats import read_text

            points, colors, normals, fmt, fields = read_text(path)
    except MemoryError:
        raise CaseReadError(f"{name}: the point cloud is too large for the available memory") from None
    if organized is not None:
        extra["grid_shape"] = tuple(int(v) for v in organized)
    cloud, dropped = make_cloud(points, colors, normals, name=name, **extra)
    return loaded_case(cloud, path, fmt, fields, dropped, **more)


def _is_pcd(head: bytes) -> bool:
    return head.startswith(b"# .PCD") or (
        b"FIELDS" in head and (b"VERSION" in head or b"DATA" in head) and not head.startswith(b"ply")
    )


def sniff(path: Path, head: bytes) -> bool:
    """True for files this modality reads; must be cheap and never claim other modalities' files."""
    suffix = Path(path).suffix.lower()
    if head.startswith((b"ply\n", b"ply\r\n")) or (head.startswith(b"ply") and suffix == ".ply"):
        return True
    if _is_pcd(head):
        return True
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return _xyz_tiff(Path(path))
    if head.startswith(b"\x93NUMPY"):
        return _cloud_npy_header(head)
    if head.startswith(b"PK\x03\x04"):
        return suffix == ".npz" and _cloud_npz(head)
    if suffix in TEXT_EXTENSIONS:
        return True
    if suffix == ".txt":
        return _cloud_text(head)
    return False


def _cloud_text(head: bytes) -> bool:
    """Rows of 3-12 whitespace-separated numbers; or any separator under a header naming x, y, z."""
    lines = [ln for ln in head.decode("ascii", errors="replace").splitlines()[:-1] if ln.strip()]
    if lines and set(re.split(r"[,;\s]+", lines[0].strip().lstrip("/#").strip().lower())) >= {"x", "y", "z"}:
        rows = lines[1:]
        return bool(rows) and all(_ANY_ROW.match(ln) for ln in rows)
    return len(lines) >= 2 and all(_ROW.match(ln) for ln in lines)


def _xyz_tiff(path: Path) -> bool:
    """A float 3-channel TIFF. Files with a TIFF-like preamble that are not TIFFs (some DICOM files
    start with "II*") make tifffile log a warning: it is silenced, the answer is simply no."""
    tiff_log = logging.getLogger("tifffile")
    level = tiff_log.level
    tiff_log.setLevel(logging.CRITICAL)
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(series.shape)
            return series.dtype.kind == "f" and len(shape) == 3 and 3 in (shape[0], shape[-1])
    except Exception:  # noqa: BLE001 - a damaged TIFF is simply not ours to claim
        return False
    finally:
        tiff_log.setLevel(level)


def _npy_header(head: bytes) -> dict | None:
    try:
        major = head[6]
        if major == 1:
            (length,) = struct.unpack("<H", head[8:10])
            start = 10
        else:
            (length,) = struct.unpack("<I", head[8:12])
            start = 12
        return ast.literal_eval(head[start : start + length].decode("latin1"))
    except (ValueError, SyntaxError, struct.error, IndexError, UnicodeDecodeError):
        return None


def _cloud_npy_header(head: bytes) -> bool:
    header = _npy_header(head)
    if not isinstance(header, dict):
        return False
    descr, shape = header.get("descr"), header.get("shape")
    if isinstance(descr, list):
        names = {str(d[0]).lower() for d in descr if isinstance(d, tuple) and d}
        return {"x", "y", "z"} <= names
    if not isinstance(descr, str) or descr[1:2] != "f" or not isinstance(shape, tuple):
        return False
    return (len(shape) == 2 and 3 <= shape[1] <= 12 and shape[0] >= 3) or (len(shape) == 3 and shape[2] == 3)


def _cloud_npz(head: bytes) -> bool:
    """The first member of the archive: a known point-array name, or a stored cloud-shaped NPY."""
    from .simple_formats import POINT_KEYS

    try:
        method, name_len, extra_len = struct.unpack("<H", head[8:10])[0], *struct.unpack("<HH", head[26:30])
        member = head[30 : 30 + name_len].decode("utf-8", errors="replace")
    except struct.error:
        return False
    if member.lower().removesuffix(".npy") in POINT_KEYS:
        return True
    body = head[30 + name_len + extra_len :]
    return method == 0 and body.startswith(b"\x93NUMPY") and _cloud_npy_header(body)
