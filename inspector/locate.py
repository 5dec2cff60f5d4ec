"""Answer items -> places on the case: boxes on sent images back to view and case coordinates.

The model sees downscaled PNGs of the case's views. A box it returns is in those sent pixels; this
module picks the view it belongs to, scales it back to the view (`PromptImage.scale`) and, for
``pixel_scale`` views, through the view map to case pixels. Modalities with other maps (slices,
frame grids, plots, depth renders) call `box_in_view` and finish the mapping in their own `locate`.
Anything ambiguous or malformed is dropped rather than guessed.

Set-of-Mark answers carry a ``"mask"`` (run lengths, `encode_mask`) cropped to exactly the item's
box in sent pixels, and the ``"mark"`` number. A mask is a grid laid over its box, whatever the
resolution, so it stays valid when the box is scaled to view or case pixels; it only has to be
cropped when the box itself is cut (clipped to the image, to a tile). `item_mask` and `crop_mask`
do that, so every modality keeps the mask aligned with the region box it returns, or drops it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from inspector.localization.masks import decode_mask, encode_mask
from inspector.model import Region
from inspector.plugins import QueryView

Box = tuple[float, float, float, float]

log = logging.getLogger(__name__)


def _raw_box(item: dict[str, Any]) -> Box | None:
    """The item's box as written (sent pixels), ends ordered; None when it is not four numbers."""
    box = item.get("box") or item.get("bbox")
    if box is None and all(k in item for k in ("x0", "y0", "x1", "y1")):
        box = [item["x0"], item["y0"], item["x1"], item["y1"]]
    try:
        x0, y0, x1, y1 = (float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def crop_mask(mask: np.ndarray, box: Box, inner: Box) -> np.ndarray | None:
    """The part of `mask` (a grid spanning `box`) that covers `inner`, a sub-box in the same units.

    Cut lines are rounded to whole mask cells, so a cut that moves less than half a cell leaves the
    mask as it is. None when nothing of the mask lies in `inner`: a region without its mask is
    better than a highlight that does not match the box.
    """
    h, w = mask.shape
    bw, bh = box[2] - box[0], box[3] - box[1]
    if h == 0 or w == 0 or bw <= 0 or bh <= 0:
        return None

    def cut(value: float, origin: float, span: float, cells: int) -> int:
        return int(min(cells, max(0, round((value - origin) * cells / span))))

    c0, c1 = cut(inner[0], box[0], bw, w), cut(inner[2], box[0], bw, w)
    r0, r1 = cut(inner[1], box[1], bh, h), cut(inner[3], box[1], bh, h)
    part = mask[r0:r1, c0:c1]
    if part.size == 0 or not part.any():
        return None
    return part


def item_mask(item: dict[str, Any], query: QueryView, view_box: Box) -> np.ndarray | None:
    """The item's mask cut to `view_box` (what `box_in_view` returned for it), or None.

    The mask spans the box as the model's answer wrote it, in sent pixels; `box_in_view` may have
    clipped that box to the image. None when the item has no mask, it does not decode, or none
    of it is left inside the clipped box.
    """
    rle = item.get("mask")
    if not isinstance(rle, dict):
        return None
    raw = _raw_box(item)
    if raw is None:
        return None
    try:
        mask = decode_mask(rle)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("mark %s: its mask does not decode (%s); the region keeps only its box", item.get("mark"), exc)
        return None
    scale = query.image.scale or 1.0
    sent = (view_box[0] * scale, view_box[1] * scale, view_box[2] * scale, view_box[3] * scale)
    return crop_mask(mask, raw, sent)


def mark_number(item: dict[str, Any]) -> int | None:
    """The Set-of-Mark number of an answer item, when it has one that reads as an integer."""
    value = item.get("mark")
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def mark_detail(item: dict[str, Any], mask: np.ndarray | None) -> dict[str, Any]:
    """The ``detail`` entries a mark adds to a region: ``{"mask": rle, "mark": n}``, each when present.

    The mask must already be aligned with the box of the region it goes into.
    """
    detail: dict[str, Any] = {}
    if mask is not None:
        detail["mask"] = encode_mask(mask)
    number = mark_number(item)
    if number is not None:
        detail["mark"] = number
    return detail


def box_in_view(item: dict[str, Any], queries: list[QueryView]) -> tuple[QueryView, Box] | None:
    """The query view a box item refers to and the box in that view's pixels (clipped, ordered)."""
    raw = _raw_box(item)
    if raw is None:
        return None
    x0, y0, x1, y1 = raw
    wanted = str(item.get("view", "")).strip()
    if wanted:
        query = next((q for q in queries if q.image.label == wanted), None)
        if query is None:  # models often echo the caption ("Image to inspect: slice 12")
            query = next((q for q in queries if wanted.endswith(q.image.label)), None)
    else:
        query = queries[0] if len(queries) == 1 else None  # unnamed boxes are unambiguous only with one view
    if query is None:
        return None
    image = query.image
    x0, x1 = sorted((max(0.0, min(x0, image.width)), max(0.0, min(x1, image.width))))
    y0, y1 = sorted((max(0.0, min(y0, image.height)), max(0.0, min(y1, image.height))))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    scale = image.scale or 1.0
    return query, (x0 / scale, y0 / scale, x1 / scale, y1 / scale)


def locate_box(item: dict[str, Any], queries: list[QueryView]) -> Region | None:
    """The default `locate`: a box on a ``pixel_scale`` view (or an unmapped view) in case pixels.

    A mark's mask goes into ``detail["mask"]``, cut to the clipped box; scaling the box to case
    pixels needs nothing more, the mask is a grid over whatever the box is.
    """
    found = box_in_view(item, queries)
    if found is None:
        return None
    query, (x0, y0, x1, y1) = found
    view_map = query.view_map
    if view_map is not None and view_map.kind != "pixel_scale":
        return None  # the modality's own `locate` knows this map; without it, do not guess
    detail = mark_detail(item, item_mask(item, query, (x0, y0, x1, y1)))
    if view_map is not None:
        x0, y0 = view_map.view_to_case_xy(x0, y0)
        x1, y1 = view_map.view_to_case_xy(x1, y1)
    return Region(
        x0, y0, x1, y1, score=1.0, label=str(item.get("label", "")), reason=str(item.get("reason", "")), detail=detail
    )
