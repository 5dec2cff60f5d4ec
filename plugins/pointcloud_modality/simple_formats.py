"""Readers for the table-like formats: XYZ/TXT/PTS text, NumPy NPY/NPZ, MVTec 3D-AD XYZ TIFF.

MVTec 3D-AD stores each scan as an organized float32 H x W x 3 TIFF of x, y, z; pixels without a
measurement are (0, 0, 0). Those are dropped, and the sensor grid is kept (`grid_shape`,
`pixel_index`) so a point can be traced back to its pixel. When the dataset's layout is found
(``.../xyz/000.tiff`` beside ``.../rgb/000.png`` of the same size) the colours are taken from it.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from inspector.imaging import CaseReadError

from .fields import split_columns, split_fields

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)
POINT_KEYS = ("points", "xyz", "pos", "positions", "vertices", "coords", "point_cloud", "pc", "data")
COLOR_KEYS = ("colors", "colours", "rgb", "color", "colour")
NORMAL_KEYS = ("normals", "normal", "nrm")


def _numeric(tokens: list[str]) -> bool:
    return bool(tokens) and all(_NUMBER.match(t) for t in tokens)


def _tokens(line: str) -> list[str]:
    return [t for t in re.split(r"[,;\s]+", line.strip()) if t]


def read_text(path: Path):
    """XYZ-style text: one point per line; a leading count line (PTS) and a header line are skipped
    (a header's names are used when they name the columns)."""
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise CaseReadError(f"{name}: not a text point cloud (the file is binary)") from None
    lines = text.splitlines()
    start, names = 0, None
    while start < min(len(lines), 5):
        tokens = _tokens(lines[start].lstrip("/#"))
        if not tokens:
            start += 1
        elif len(tokens) == 1 and tokens[0].isdigit() and start == 0:
            start += 1  # PTS point count
        elif not _numeric(tokens):
            names = [t.lower() for t in tokens]
            start += 1
        else:
            break
    body = "\n".join(line for line in lines[start:] if line.strip() and not line.lstrip().startswith(("#", "//")))
    if not body:
        raise CaseReadError(f"{name}: the file contains no point rows")
    delimiter = "," if "," in body[:2000] else (";" if ";" in body[:2000] else None)
    try:
        table = np.loadtxt(io.StringIO(body), dtype=np.float64, delimiter=delimiter, ndmin=2, comments=None)
    except ValueError as exc:
        raise CaseReadError(
            f"{name}: not a point list: every line must hold the same count of numbers ({exc})"
        ) from None
    if names is not None and len(names) == table.shape[1]:
        try:
            points, colors, normals, fields = split_fields({n: table[:, i] for i, n in enumerate(names)}, name)
            return points, colors, normals, "XYZ text", fields
        except CaseReadError:
            pass  # names that are not coordinates: fall back to column positions
    points, colors, normals, fields = split_columns(table, name)
    return points, colors, normals, "XYZ text", fields


def read_npy(path: Path):
    name = path.name
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CaseReadError(f"{name}: not a readable NumPy array ({exc})") from None
    return _from_array(array, name, "NPY")


# An NPZ is a zip: its members are inflated in full by numpy, so their declared sizes are checked first.
MAX_NPZ_BYTES = 1 << 30


def read_npz(path: Path):
    name = path.name
    try:
        with zipfile.ZipFile(path) as listing:
            unpacked = sum(member.file_size for member in listing.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise CaseReadError(f"{name}: not a readable NumPy archive ({exc})") from None
    if unpacked > MAX_NPZ_BYTES:
        raise CaseReadError(
            f"{name}: the archive would unpack to {unpacked / 1e6:,.0f} MB (at most {MAX_NPZ_BYTES / 1e6:,.0f} MB)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CaseReadError(f"{name}: not a readable NumPy archive ({exc})") from None
    lower = {k.lower(): k for k in arrays}
    key = next((lower[k] for k in POINT_KEYS if k in lower), None)
    if key is None and len(arrays) == 1:
        key = next(iter(arrays))
    if key is None:
        raise CaseReadError(
            f"{name}: no point array in the archive (expected one of {', '.join(POINT_KEYS[:4])}; "
            f"found {', '.join(arrays) or 'nothing'})"
        )
    points, colors, normals, fmt, fields, organized = _from_array(arrays[key], name, "NPZ")
    valid = _organized_valid(arrays[key]) if organized else None
    for keys, slot in ((COLOR_KEYS, "colors"), (NORMAL_KEYS, "normals")):
        extra_key = next((lower[k] for k in keys if k in lower), None)
        if extra_key is None:
            continue
        extra = np.asarray(arrays[extra_key])
        extra = extra.reshape(-1, extra.shape[-1]) if extra.ndim >= 2 else extra
        if valid is not None and extra.shape[0] == valid.size:
            extra = extra[valid]
        if extra.ndim != 2 or extra.shape[0] != points.shape[0] or extra.shape[1] < 3:
            raise CaseReadError(
                f"{name}: '{extra_key}' has shape {arrays[extra_key].shape}, which does not match "
                f"{points.shape[0]:,} points"
            )
        if slot == "colors":
            colors = extra[:, :3]
            fields = [*fields, "red", "green", "blue"]
        else:
            normals = extra[:, :3]
            fields = [*fields, "nx", "ny", "nz"]
    return points, colors, normals, fmt, fields, organized


def _organized_valid(array: np.ndarray) -> np.ndarray:
    xyz = np.asarray(array, dtype=np.float64)[..., :3].reshape(-1, 3)
    return np.isfinite(xyz).all(axis=1) & (xyz != 0).any(axis=1)


def _from_array(array: np.ndarray, name: str, fmt: str):
    """-> (points, colors, normals, format, fields, organized grid or None)."""
    if array.dtype.names:  # structured: named fields
        points, colors, normals, fields = split_fields({f: array[f].reshape(-1) for f in array.dtype.names}, name)
        return points, colors, normals, fmt, fields, None
    if not np.issubdtype(array.dtype, np.number):
        raise CaseReadError(f"{name}: the array holds {array.dtype}, not numbers")
    if array.ndim == 3 and array.shape[2] >= 3:  # organized H x W x C
        valid = _organized_valid(array)
        flat = array.reshape(-1, array.shape[2]).astype(np.float64)[valid]
        points, colors, normals, fields = split_columns(flat, name)
        return points, colors, normals, f"{fmt} organized", fields, (array.shape[0], array.shape[1])
    if array.ndim != 2:
        raise CaseReadError(f"{name}: expected an N x 3 (or N x 6, N x 9) or H x W x 3 array, got shape {array.shape}")
    points, colors, normals, fields = split_columns(array.astype(np.float64, copy=False), name)
    return points, colors, normals, fmt, fields, None


def read_xyz_tiff(path: Path):
    """MVTec 3D-AD organized XYZ TIFF -> points (zeros dropped), colours from the sibling rgb PNG."""
    import tifffile

    name = path.name
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise CaseReadError(f"{name}: the TIFF cannot be decoded ({type(exc).__name__}: {exc})") from None
    if array.size == 0:
        raise CaseReadError(f"{name}: the TIFF cannot be decoded (damaged: it holds no image data)")
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim != 3 or array.shape[2] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise CaseReadError(
            f"{name}: not an organized XYZ point cloud (expected float H x W x 3, got {array.dtype} {array.shape})"
        )
    h, w = array.shape[:2]
    flat = array.reshape(-1, 3)
    valid = np.isfinite(flat).all(axis=1) & (flat != 0).any(axis=1)
    pixel_index = np.flatnonzero(valid).astype(np.int64)
    points = flat[valid]
    colors, source = _mvtec_colors(path, (h, w), valid)
    fields = ["x", "y", "z"] + (["red", "green", "blue"] if colors is not None else [])
    return points, colors, None, "MVTec 3D-AD XYZ TIFF", fields, (h, w), pixel_index, source


def _mvtec_colors(path: Path, shape: tuple[int, int], valid: np.ndarray):
    if path.parent.name.lower() != "xyz":
        return None, None
    for candidate in (path.parent.parent / "rgb" / f"{path.stem}.png", path.parent.parent / "rgb" / f"{path.stem}.jpg"):
        if candidate.is_file():
            try:
                from PIL import Image

                with Image.open(candidate) as image:
                    rgb = np.asarray(image.convert("RGB"))
            except OSError:
                return None, None
            if rgb.shape[:2] != shape:
                return None, None
            return rgb.reshape(-1, 3)[valid], f"rgb/{candidate.name}"
    return None, None
