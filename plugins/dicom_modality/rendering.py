"""What the model and the offline detector see of a DICOM case, and how their answers map back.

A view is one slice, windowed exactly as the viewer shows it (same `DicomVolume.rgb`), resampled
to square pixels (PixelSpacing) and brought to a size a VLM reads well (tiny 64x64 MR slices are
enlarged, huge ones reduced). Its label says only "slice k/N" and the window: no tag text is ever
drawn or written into what is sent, so no patient data leaves with it. The view map
(kind ``"slice"``) records the 0-based slice index and the view-pixel -> slice-pixel scales, so a
box the model draws becomes a `Region` in that slice's pixels with ``detail={"slice": k}``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image

from inspector.locate import box_in_view, crop_mask, item_mask, mark_detail
from inspector.model import LoadedCase, Region, View, ViewMap
from inspector.plugins import OfflineContext, OfflineOutcome, QueryView

from .volume import DicomVolume

MAP_KIND = "slice"
MIN_SIDE = 384  # slices are enlarged until their longer side reaches this (VLMs miss detail on 64 px)
MAX_SIDE = 1024
MAX_VIEWS = 12  # at most this many slices in one prompt
_SLICE_IN_TEXT = re.compile(r"slice\s*(\d+)", re.IGNORECASE)
_PEAK = re.compile(r"near \(x=\d+, y=\d+\)")  # the detector names its peak in view pixels


def _window_option(volume: DicomVolume, options: dict[str, Any]) -> tuple[float, float]:
    """The window asked for (viewer state or profile), or the volume's default; junk is ignored."""
    value = options.get("window")
    try:
        center, width = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return volume.window
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        return volume.window
    return center, width


def chosen_slices(volume: DicomVolume, options: dict[str, Any]) -> list[int]:
    """Slices to render: ``"slices"`` (a list, or a count spread over the series) wins over ``"slice"``;
    the default is the middle slice, as the viewer opens on it."""
    wanted = options.get("slices")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
        count = min(wanted, volume.n_slices, MAX_VIEWS)
        picks = np.linspace(0, volume.n_slices - 1, count + 2)[1:-1] if count < volume.n_slices else range(count)
        return sorted({round(float(p)) for p in picks})
    if isinstance(wanted, list | tuple) and wanted:
        picks = sorted({volume.clamp_slice(k) for k in wanted})
        return picks[:MAX_VIEWS]
    if "slice" in options:
        return [volume.clamp_slice(options["slice"])]
    return [volume.middle]


def view_label(volume: DicomVolume, index: int, window: tuple[float, float]) -> str:
    label = f"slice {index + 1}/{volume.n_slices}"
    if not volume.is_color:
        label += f", W {window[1]:g} L {window[0]:g}"
    return label


def view_size(volume: DicomVolume, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """(width, height) of a slice view: square pixels, longer side within [min_side, max_side]."""
    width, height = float(volume.width), volume.height * volume.pixel_aspect
    longer = max(width, height)
    target = min(max(longer, float(min_side)), float(max_side))
    factor = target / longer
    return max(1, round(width * factor)), max(1, round(height * factor))


def slice_view(volume: DicomVolume, index: int, window: tuple[float, float], max_side: int = MAX_SIDE) -> View:
    rgb = volume.rgb(index, window)
    width, height = view_size(volume, max_side)
    if (width, height) != (volume.width, volume.height):
        enlarging = width > volume.width
        resample = Image.Resampling.BICUBIC if enlarging else Image.Resampling.LANCZOS
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), resample))
    params = {
        "slice": index,
        "slice_number": index + 1,
        "slices": volume.n_slices,
        "scale_x": volume.width / width,
        "scale_y": volume.height / height,
        "case_size": [volume.width, volume.height],
        "window": None if volume.is_color else [window[0], window[1]],
    }
    return View(
        label=view_label(volume, index, window), image=np.ascontiguousarray(rgb), view_map=ViewMap(MAP_KIND, params)
    )


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    volume: DicomVolume = loaded.data
    window = _window_option(volume, options)
    try:
        max_side = int(options.get("max_side", MAX_SIDE))
    except (TypeError, ValueError):
        max_side = MAX_SIDE
    current = volume.clamp_slice(options["slice"]) if "slice" in options else None  # what the viewer shows
    views = [slice_view(volume, k, window, max(64, max_side)) for k in chosen_slices(volume, options)]
    for k, view in zip(chosen_slices(volume, options), views, strict=True):
        view.shown = None if current is None else k == current
    return views


def _query_for_slice_text(item: dict[str, Any], queries: list[QueryView]) -> QueryView | None:
    """A model that writes ``"view": "slice 12"`` (without our window suffix) still means slice 12."""
    match = _SLICE_IN_TEXT.search(str(item.get("view", "")))
    if match is None:
        return None
    number = int(match.group(1))
    found = [
        q
        for q in queries
        if q.view_map is not None and q.view_map.kind == MAP_KIND and q.view_map.params.get("slice_number") == number
    ]
    return found[0] if len(found) == 1 else None


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase | None) -> Region | None:
    """A box on a slice view -> Region in that slice's pixels with ``detail={"slice": k}``; else None.

    A mark's mask (Set-of-Mark answers) rides along as ``detail["mask"]`` with ``detail["mark"]``,
    cut wherever the box is cut (to the view, to the slice), so the viewer's highlight matches the box.
    """
    if not any(k in item for k in ("box", "bbox", "x0")):
        return None  # slice ranges are not placed: the prompt asks for boxes (or marks, which carry one)
    found = box_in_view(item, queries)
    if found is None:
        query = _query_for_slice_text(item, queries)
        if query is None:
            return None
        item = {**item, "view": query.image.label}
        found = box_in_view(item, queries)
        if found is None:
            return None
    query, (x0, y0, x1, y1) = found
    view_map = query.view_map
    if view_map is None or view_map.kind != MAP_KIND:
        return None
    params = view_map.params
    width, height = params["case_size"]
    sx, sy = float(params["scale_x"]), float(params["scale_y"])
    scaled = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    box = (min(scaled[0], width), min(scaled[1], height), min(scaled[2], width), min(scaled[3], height))
    slice_index = int(params["slice"])
    if loaded is not None and not 0 <= slice_index < loaded.data.n_slices:
        return None
    mask = item_mask(item, query, (x0, y0, x1, y1))
    if mask is not None and box != scaled:
        mask = crop_mask(mask, scaled, box)
    return Region(
        *box,
        score=1.0,
        label=str(item.get("label", "")),
        reason=str(item.get("reason", "")),
        detail={"slice": slice_index, **mark_detail(item, mask)},
    )


# ---------------------------------------------------------------------- offline detector and references
# The detector and the references see the same images as the model: the slice view with the default
# window (square pixels, readable size). Heat maps and regions are mapped back to slice pixels.


def offline_input(loaded: LoadedCase) -> np.ndarray:
    """The middle slice view with the default window, as the viewer opens on it."""
    volume: DicomVolume = loaded.data
    return slice_view(volume, volume.middle, volume.window).image


def _offline_slices(volume: DicomVolume, options: dict[str, Any], shown: dict[str, Any] | None = None) -> list[int]:
    """Profile setting ``dicom.offline_slices``: "middle", "all", a count, or a list; without it
    (the default), the slice(s) the viewer shows (``render_options``), else the middle one."""
    wanted = options.get("offline_slices")
    if wanted == "all":
        return list(range(volume.n_slices))
    if isinstance(wanted, int | list | tuple) and not isinstance(wanted, bool) and wanted:
        return chosen_slices(volume, {"slices": wanted})
    if wanted is None and shown and ("slice" in shown or "slices" in shown):
        return chosen_slices(volume, shown)
    return [volume.middle]


def _heat_to_slice(heat: np.ndarray, volume: DicomVolume) -> np.ndarray:
    if heat.shape == (volume.height, volume.width):
        return heat.astype(np.float32)
    resized = Image.fromarray(heat.astype(np.float32), mode="F").resize(
        (volume.width, volume.height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    """Score slices (default: the middle one) with the built-in image detector; the worst one wins.

    ``details["slice"]`` tells the viewer which slice the heat map and the regions belong to; both are
    in that slice's pixels. The slice(s) scored are the ones the viewer shows, unless the profile's
    ``offline_slices`` setting says otherwise (see `_offline_slices`).
    """
    volume: DicomVolume = loaded.data
    detector = context.image_detector()
    slices = _offline_slices(volume, context.options, context.render_options)
    scores: dict[str, float] = {}
    best = None
    for done, index in enumerate(slices):
        if context.is_cancelled():
            break
        view = slice_view(volume, index, volume.window)
        result = detector.score(view.image)
        scores[str(index)] = round(float(result.score), 4)
        if best is None or result.score > best[2].score:
            best = (index, view, result)
        context.progress((done + 1) / len(slices))
    if best is None:
        return OfflineOutcome(False, 0.0, "Cancelled before any slice was scored.")
    index, view, result = best
    sx, sy = view.view_map.params["scale_x"], view.view_map.params["scale_y"]
    regions = [
        Region(
            r.x0 * sx,
            r.y0 * sy,
            r.x1 * sx,
            r.y1 * sy,
            score=r.score,
            label=r.label,
            reason=r.reason,
            detail={**r.detail, "slice": index},
        )
        for r in result.regions
    ]
    heat = _heat_to_slice(result.heatmap, volume)
    peak_y, peak_x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    explanation = _PEAK.sub(f"near (x={peak_x}, y={peak_y}) on the slice", result.explanation)
    where = f"Slice {index + 1}/{volume.n_slices}"
    if len(scores) > 1:
        where += f" (the highest of {len(scores)} slices scored)"
    return OfflineOutcome(
        anomalous=bool(result.anomalous),
        score=float(result.score),
        explanation=f"{where}: {explanation}",
        regions=regions,
        heatmap=heat,
        details={"slice": index, "slice_scores": scores},
        summary=f"slice {index + 1}, raw score {result.raw_score:.4f}, threshold {result.threshold:.4f}",
        model="EfficientNet-Lite0 patch kNN (offline), per slice",
    )


def reference_images(loaded: LoadedCase) -> list[tuple[str, np.ndarray]]:
    """A normal case contributes its middle slice view (default window).

    The name is neutral ("DICOM reference, slice k/N"), never the file or folder name: reference
    names are shown to the model in captions, and DICOM files and series folders are often named
    after the patient or the accession number.
    """
    volume: DicomVolume = loaded.data
    index = volume.middle
    return [(f"DICOM reference, slice {index + 1}/{volume.n_slices}", slice_view(volume, index, volume.window).image)]
