"""DICOM files, multi-frame files and series folders -> `DicomVolume` plus case metadata (pydicom).

A folder is one series: every file's header is read first (pixel data deferred), the files are
grouped by SeriesInstanceUID, the largest series is kept (the others are listed in the metadata
with a note), images of another size are left out, and the slices are sorted along the slice
normal by ImagePositionPatient, else by InstanceNumber, else by file name. Only then are the
chosen files' pixels decoded.

Values are converted to modality units with the rescale slope/intercept (per frame for enhanced
multi-frame files); MONOCHROME1 is kept as values and inverted at display. Every failure becomes a
`CaseReadError` with a sentence an operator can act on (truncated copy, no decoder installed for a
compressed transfer syntax, not a DICOM file, no image inside); a damaged file inside a series is
left out with a note instead of failing the whole series.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from inspector.imaging import CaseReadError

from . import tags
from .folders import ignored
from .volume import DicomVolume, FileWindow, auto_window, robust_range

DEFER_SIZE = 16 * 1024  # header pass: larger values (pixel data) are read only when decoded
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# ---------------------------------------------------------------------- opening one file


def open_dataset(path: Path, defer: int | None = None) -> Any:
    """Parse a file's data set; a clear `CaseReadError` when it is not DICOM or cannot be read."""
    name = path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, defer_size=defer)
        _set_transfer_syntax(dataset)
        return dataset
    except InvalidDicomError:
        pass  # no preamble: an old raw data set, or not DICOM at all (tried below)
    except OSError as exc:
        raise CaseReadError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged headers
        raise CaseReadError(f"{name}: the DICOM header is damaged and cannot be read ({_first_line(exc)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, defer_size=defer, force=True)
        image = "Rows" in dataset and "Columns" in dataset and any(k in dataset for k in _PIXEL_KEYWORDS)
        plausible = image or bool(_sop_class_name(dataset))  # a registered SOP class: DICOM, maybe no image
    except Exception:  # noqa: BLE001 - anything unreadable here is simply not DICOM
        plausible = False
    if not plausible:
        raise CaseReadError(
            f"{name}: not a DICOM file (no DICOM header and no image data set found). "
            "PNG or JPEG exports open as 2D images."
        )
    _set_transfer_syntax(dataset)
    return dataset


def _set_transfer_syntax(dataset: Any) -> None:
    """A raw data set (no file meta) says its encoding only by how it parsed; pixel decoding needs it."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(dataset, "original_encoding", (None, None))
    if implicit is None:
        return
    syntax = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    dataset.ensure_file_meta()
    dataset.file_meta.TransferSyntaxUID = syntax


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _sop_class_name(dataset: Any) -> str:
    uid = dataset.get("SOPClassUID")
    meta = getattr(dataset, "file_meta", None)
    if uid is None and meta is not None:
        uid = meta.get("MediaStorageSOPClassUID")
    return str(getattr(uid, "name", "") or "")


def check_has_image(dataset: Any, name: str) -> None:
    """Raise the right message for a DICOM object without pixels: truncated image, or not an image."""
    if any(k in dataset for k in _PIXEL_KEYWORDS):
        return
    kind = _sop_class_name(dataset)
    if "Rows" in dataset or "Image" in kind:
        raise CaseReadError(
            f"{name}: the image holds no pixel data; the file probably ends early (truncated: an "
            "incomplete copy or an interrupted transfer). Copy it again from its source."
        )
    if kind:
        raise CaseReadError(f"{name}: this DICOM object holds no image ({kind}); only images can be inspected.")
    raise CaseReadError(
        f"{name}: the DICOM file holds no image data (it may be truncated, or it is not an image object)."
    )


# ---------------------------------------------------------------------- decoding pixels


@dataclass
class Decoded:
    """One file's frames as stored (grey: raw values, colour: RGB uint8) and how to rescale them."""

    frames: np.ndarray  # (F, H, W) raw grey or (F, H, W, 3) uint8 RGB
    rescale: list[tuple[float, float]]  # per frame (slope, intercept); identity for colour
    color: bool


def _transfer_syntax(dataset: Any) -> Any:
    meta = getattr(dataset, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _check_decoder(dataset: Any, name: str) -> None:
    """A compressed transfer syntax without an installed decoder: say which packages would decode it."""
    syntax = _transfer_syntax(dataset)
    if syntax is None or not syntax.is_compressed:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise CaseReadError(
            f"{name}: the pixels are compressed as {syntax.name}, which this application "
            "cannot decode. Export the images uncompressed."
        ) from None
    if decoder.is_available:
        return
    options = [dep.split(" - requires ", 1)[-1] for dep in decoder.missing_dependencies]
    hint = "; or ".join(options) if options else "a pydicom pixel data plugin"
    raise CaseReadError(
        f"{name}: the pixels are compressed as {syntax.name}, and no decoder for it is installed. "
        f"Install {hint} (Python packages) and open the case again, or export the images "
        "uncompressed."
    )


def _pixel_array(dataset: Any, name: str) -> np.ndarray:
    _check_decoder(dataset, name)
    syntax = _transfer_syntax(dataset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dataset.pixel_array
    except ValueError as exc:
        text = _first_line(exc)
        if "less than expected" in text:
            detail = text.split("(", 1)[-1].split(")", 1)[0] if "(" in text else ""
            detail = f" ({detail.replace(' vs ', ' of ')} of pixel data)" if detail else ""
            raise CaseReadError(
                f"{name}: the file ends early (truncated){detail}: an incomplete copy or an "
                "interrupted transfer. Copy it again from its source."
            ) from None
        raise CaseReadError(f"{name}: the image description is invalid ({text})") from None
    except (AttributeError, KeyError) as exc:
        raise CaseReadError(f"{name}: the image description is incomplete ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise RuntimeError and others
        if syntax is not None and syntax.is_compressed:
            raise CaseReadError(_undecodable(name, syntax, exc)) from None
        raise CaseReadError(f"{name}: the pixel data is damaged ({_first_line(exc)})") from None


def _undecodable(name: str, syntax: Any, exc: BaseException) -> str:
    """Installed decoders failed: quote their reasons, and name the decoders that are not installed."""
    from pydicom.pixels import get_decoder

    lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    reasons = "; ".join(lines[:3]) or _first_line(exc)
    message = f"{name}: the compressed pixel data ({syntax.name}) could not be decoded ({reasons})."
    try:
        missing = [dep.split(" - requires ", 1)[-1] for dep in get_decoder(syntax).missing_dependencies]
    except Exception:  # noqa: BLE001 - the hint is optional
        missing = []
    if missing:
        message += f" Another decoder may read it: install {'; or '.join(missing)} (Python packages)."
    return message + " Otherwise the file may be damaged."


def _int(dataset: Any, keyword: str, default: int) -> int:
    try:
        value = dataset.get(keyword)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default


def _group_item(dataset: Any, sequence: str, frame: int | None) -> Any:
    """An item of a functional-group macro (enhanced multi-frame): per-frame if given, else shared."""
    holder = None
    if frame is not None:
        per = dataset.get("PerFrameFunctionalGroupsSequence")
        if per is not None and frame < len(per):
            holder = per[frame]
    if holder is None or sequence not in holder:
        shared = dataset.get("SharedFunctionalGroupsSequence")
        holder = shared[0] if shared else None
    if holder is None:
        return None
    seq = holder.get(sequence)
    return seq[0] if seq else None


def _rescale(dataset: Any, n_frames: int) -> list[tuple[float, float]]:
    """(slope, intercept) per frame: top-level tags, else the enhanced Pixel Value Transformation."""
    if "RescaleSlope" in dataset or "RescaleIntercept" in dataset:
        pair = (_float(dataset.get("RescaleSlope"), 1.0) or 1.0, _float(dataset.get("RescaleIntercept"), 0.0))
        return [pair] * n_frames
    if str(dataset.get("Modality", "")) == "RTDOSE" and "DoseGridScaling" in dataset:
        return [(_float(dataset.get("DoseGridScaling"), 1.0) or 1.0, 0.0)] * n_frames
    out = []
    for frame in range(n_frames):
        item = _group_item(dataset, "PixelValueTransformationSequence", frame)
        if item is None:
            out.append((1.0, 0.0))
        else:
            out.append((_float(item.get("RescaleSlope"), 1.0) or 1.0, _float(item.get("RescaleIntercept"), 0.0)))
    return out


def _color_to_uint8(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    top = float(2**bits - 1) if 8 < bits <= 32 else float(np.iinfo(rgb.dtype).max)
    return np.clip(rgb.astype(np.float32) * np.float32(255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def decode(dataset: Any, name: str) -> Decoded:
    """A data set's pixels as frames, colour converted to RGB uint8 (YBR is converted by pydicom)."""
    array = _pixel_array(dataset, name)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = _int(dataset, "SamplesPerPixel", 1)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            array = apply_color_lut(array, dataset)
        except Exception as exc:  # noqa: BLE001 - a broken palette must give a message
            raise CaseReadError(f"{name}: the colour palette is invalid ({_first_line(exc)})") from None
        samples = 3
    color = samples > 1
    if array.ndim == (3 if color else 2):
        array = array[None]
    if array.ndim != (4 if color else 3) or 0 in array.shape:
        raise CaseReadError(f"{name}: unexpected pixel layout {array.shape} for {photometric}")
    if color:
        bits = 16 if photometric == "PALETTE COLOR" else _int(dataset, "BitsStored", 8)
        frames = _color_to_uint8(array[..., :3], bits)
        return Decoded(np.ascontiguousarray(frames), [(1.0, 0.0)] * frames.shape[0], True)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return Decoded(array, _rescale(dataset, array.shape[0]), False)


def assemble(parts: list[Decoded]) -> np.ndarray:
    """Concatenate decoded files into one volume in modality units (int16 when exact, else float32).

    The output dtype is decided from each part's raw min/max and rescale before anything is
    converted, and parts are released as they are copied, so a large series needs little more
    memory than the result itself.
    """
    if parts[0].color:
        return np.concatenate([p.frames for p in parts], axis=0)
    integral, low, high = True, np.inf, -np.inf
    for part in parts:
        raw_low, raw_high = float(part.frames.min()), float(part.frames.max())
        for slope, intercept in set(part.rescale):
            ends = (raw_low * slope + intercept, raw_high * slope + intercept)
            low, high = min(low, *ends), max(high, *ends)
            integral &= float(slope).is_integer() and float(intercept).is_integer()
        integral &= np.issubdtype(part.frames.dtype, np.integer)
    dtype = np.int16 if integral and low >= -32768 and high <= 32767 else np.float32
    total = sum(p.frames.shape[0] for p in parts)
    out = np.empty((total, *parts[0].frames.shape[1:3]), dtype)
    index = 0
    while parts:
        part = parts.pop(0)
        for frame, (slope, intercept) in zip(part.frames, part.rescale, strict=True):
            if slope == 1.0 and intercept == 0.0:
                out[index] = frame
            elif dtype == np.int16:
                out[index] = frame.astype(np.int32) * int(slope) + int(intercept)
            else:
                out[index] = frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)
            index += 1
    return out


# ---------------------------------------------------------------------- windows and geometry


def file_windows(dataset: Any) -> list[FileWindow]:
    """WindowCenter/WindowWidth pairs (multi-valued allowed), or the enhanced Frame VOI LUT ones."""
    source = dataset if "WindowCenter" in dataset else _group_item(dataset, "FrameVOILUTSequence", 0)
    if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
        return []

    def listed(value: Any) -> list[Any]:
        if value is None:
            return []
        return list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]

    centers, widths = listed(source.get("WindowCenter")), listed(source.get("WindowWidth"))
    names = [str(v) for v in listed(source.get("WindowCenterWidthExplanation"))]
    out = []
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        c, w = _float(center, np.nan), _float(width, np.nan)
        if np.isfinite(c) and np.isfinite(w) and w > 0:
            out.append(FileWindow(c, w, names[i] if i < len(names) else ""))
    return out


def _slice_normal(dataset: Any) -> np.ndarray | None:
    try:
        orientation = [float(v) for v in dataset.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if len(orientation) != 6:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    length = float(np.linalg.norm(normal))
    return normal / length if length > 1e-6 else None


def _position(dataset: Any) -> np.ndarray | None:
    try:
        position = np.array([float(v) for v in dataset.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        return None
    return position if position.shape == (3,) and np.all(np.isfinite(position)) else None


def sort_series(items: list[tuple[Path, Any]]) -> tuple[list[tuple[Path, Any]], str, float | None]:
    """Slices in anatomical order: (sorted items, how they were sorted, spacing along the normal)."""
    normal = next((n for _, ds in items if (n := _slice_normal(ds)) is not None), None)
    positions = [_position(ds) for _, ds in items]
    if normal is not None and all(p is not None for p in positions):
        along = [float(np.dot(p, normal)) for p in positions]  # type: ignore[arg-type]
        if len(set(np.round(along, 4))) > 1 or len(items) == 1:
            order = sorted(range(len(items)), key=lambda i: (along[i], _int(items[i][1], "InstanceNumber", 0)))
            gaps = np.diff(sorted(along))
            gaps = gaps[gaps > 1e-4]
            spacing = float(np.median(gaps)) if gaps.size else None
            how = "position along the slice normal"
            if len(set(np.round(along, 4))) < len(items):
                how += " (some positions repeat: several echoes or time points, shown one after another)"
            return [items[i] for i in order], how, spacing
    numbers = [items[i][1].get("InstanceNumber") for i in range(len(items))]
    if all(n not in (None, "") for n in numbers):
        order = sorted(range(len(items)), key=lambda i: (_int(items[i][1], "InstanceNumber", 0), items[i][0].name))
        return [items[i] for i in order], "instance number", None
    return sorted(items, key=lambda item: item[0].name), "file name", None


def _pixel_spacing(dataset: Any) -> tuple[float, float]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is not None and len(value) == 2:
            row, col = _float(value[0], 0.0), _float(value[1], 0.0)
            if row > 0 and col > 0:
                return row, col
    item = _group_item(dataset, "PixelMeasuresSequence", 0)
    if item is not None and item.get("PixelSpacing") is not None and len(item.PixelSpacing) == 2:
        row, col = _float(item.PixelSpacing[0], 0.0), _float(item.PixelSpacing[1], 0.0)
        if row > 0 and col > 0:
            return row, col
    return 1.0, 1.0


def _units(dataset: Any) -> str:
    modality = str(dataset.get("Modality", ""))
    if modality == "CT":
        return "HU"
    if modality == "RTDOSE":
        return str(dataset.get("DoseUnits", "")) or "Gy"
    return str(dataset.get("RescaleType", "") or "")


# ---------------------------------------------------------------------- public entry points


def read_file(path: Path) -> tuple[DicomVolume, dict[str, Any]]:
    """One DICOM file (single- or multi-frame) as a volume; frames in file order."""
    dataset = open_dataset(path)
    check_has_image(dataset, path.name)
    decoded = decode(dataset, path.name)
    n_frames = decoded.frames.shape[0]
    thickness = _float(dataset.get("SpacingBetweenSlices"), 0.0) or _float(dataset.get("SliceThickness"), 0.0)
    source = "multi-frame file" if n_frames > 1 else "file"
    return _build(
        path.name,
        dataset,
        [decoded],
        n_files=1,
        source=source,
        sort="frame order in the file" if n_frames > 1 else "",
        slice_spacing=thickness or None,
        notes=[],
    )


def read_series(folder: Path) -> tuple[DicomVolume, dict[str, Any]]:
    """A folder holding one series (or several: the largest is read, the others are listed)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not ignored(p))
    notes: list[str] = []
    problems: list[str] = []
    headers: list[tuple[Path, Any]] = []
    for path in files:
        try:
            dataset = open_dataset(path, defer=DEFER_SIZE)
            check_has_image(dataset, path.name)
        except CaseReadError as exc:
            problems.append(str(exc))
            continue
        headers.append((path, dataset))
    if not headers:
        reason = f" First problem: {problems[0]}" if problems else ""
        raise CaseReadError(f"{folder.name}: the folder holds no readable DICOM image.{reason}")

    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path, dataset in headers:
        groups.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((path, dataset))
    ranked = sorted(groups.values(), key=lambda g: (-len(g), g[0][0].name))
    chosen = ranked[0]
    others = [
        {
            "files": len(g),
            "modality": str(g[0][1].get("Modality", "")),
            "series_number": _int(g[0][1], "SeriesNumber", 0),  # not its description: free text may identify
        }
        for g in ranked[1:]
    ]
    if others:
        notes.append(
            f"This folder holds {len(ranked)} series; the largest ({len(chosen)} files) is shown. "
            "Put each series in its own folder to inspect the others."
        )

    def shape_key(item: tuple[Path, Any]) -> tuple[int, int, int]:
        return _int(item[1], "Rows", 0), _int(item[1], "Columns", 0), _int(item[1], "SamplesPerPixel", 1)

    common, _ = Counter(shape_key(item) for item in chosen).most_common(1)[0]
    odd = [item for item in chosen if shape_key(item) != common]
    if odd:
        notes.append(
            f"{len(odd)} image(s) of another size (e.g. a localizer) were left out: "
            + ", ".join(p.name for p, _ in odd[:5])
            + ("…" if len(odd) > 5 else "")
        )
        chosen = [item for item in chosen if shape_key(item) == common]
    ordered, sort, spacing = sort_series(chosen)

    parts: list[Decoded] = []
    kept: list[tuple[Path, Any]] = []
    for path, dataset in ordered:
        try:
            parts.append(decode(dataset, path.name))
            kept.append((path, dataset))
        except CaseReadError as exc:
            problems.append(str(exc))
    if not parts:
        raise CaseReadError(f"{folder.name}: none of the series' images could be decoded. First problem: {problems[0]}")
    if problems:
        notes.append(
            f"{len(problems)} file(s) could not be read and were left out: "
            + " | ".join(problems[:3])
            + (" | …" if len(problems) > 3 else "")
        )
    if spacing is None:
        first = kept[0][1]
        spacing = _float(first.get("SpacingBetweenSlices"), 0.0) or _float(first.get("SliceThickness"), 0.0) or None
    middle = kept[len(kept) // 2][1]
    volume, metadata = _build(
        folder.name, middle, parts, n_files=len(kept), source="series", sort=sort, slice_spacing=spacing, notes=notes
    )
    if others:
        metadata["other_series"] = others
    return volume, metadata


def _build(
    name: str,
    dataset: Any,
    parts: list[Decoded],
    *,
    n_files: int,
    source: str,
    sort: str,
    slice_spacing: float | None,
    notes: list[str],
) -> tuple[DicomVolume, dict[str, Any]]:
    """The volume (default window chosen) and its JSON-safe metadata."""
    color = parts[0].color
    voxels = assemble(parts)
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    row, col = _pixel_spacing(dataset)
    volume = DicomVolume(
        voxels=voxels,
        name=name,
        spacing=(slice_spacing or 1.0, row, col),
        invert=photometric == "MONOCHROME1" and not color,
        units="" if color else _units(dataset),
    )
    if not color:
        volume.value_range = robust_range(voxels)
        volume.auto_window = auto_window(voxels)
        volume.file_windows = file_windows(dataset)
        volume.window, volume.window_source = volume.auto_window, "auto"
        if volume.file_windows:
            first = volume.file_windows[0]
            low, high = first.center - first.width / 2, first.center + first.width / 2
            data_low, data_high = float(voxels.min()), float(voxels.max())
            if high < data_low or low > data_high:
                notes.append(
                    f"The file's window (center {first.center:g}, width {first.width:g}) lies outside the "
                    "pixel values; an automatic window is used."
                )
            else:
                volume.window, volume.window_source = (first.center, first.width), "file"
        elif "VOILUTSequence" in dataset:
            notes.append("The file's VOI LUT table is not applied; an automatic window is used.")
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
        notes.append(
            "The file says text is burned into the pixels (it may identify the patient); it is part "
            "of every image shown or sent."
        )
    metadata = tags.case_metadata(dataset)
    metadata.update(
        {
            "source": source,
            "files": n_files,
            "slices": volume.n_slices,
            "rows": volume.height,
            "columns": volume.width,
            "color": color,
            "photometric": photometric,
            "spacing_mm": [round(v, 6) for v in volume.spacing],
            "units": volume.units,
            "window": None if color else [volume.window[0], volume.window[1]],
            "window_source": "" if color else volume.window_source,
            "notes": notes,
        }
    )
    if sort:
        metadata["sorted_by"] = sort
    return volume, metadata
