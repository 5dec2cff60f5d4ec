"""Set-of-Mark rendering: numbered marks on proposal masks, and the mark -> mask map.

Set-of-Mark prompting (Yang et al., 2023; Cao et al., 2023 for anomaly localization) asks the VLM
"which numbers are anomalous?" instead of asking it to draw. That only works if every number is
legible and unambiguous, which drives the choices here:

* Masks are numbered by area, largest first, and filled in that order, so small masks are drawn
  on top of the large ones that contain them and stay visible.
* Fills are semi-transparent (the VLM must still see the surface under the mark), contours are
  opaque and drawn after all fills so no fill hides an outline.
* Each label sits at its mask's most interior point (the maximum of the distance transform), so
  it reads as belonging to that mask; labels never overlap each other and always lie inside the
  image: when the best point is taken, the next-best interior point is used, then the nearest free
  point outside the mask. If nothing fits, the font shrinks. A label avoids covering smaller
  masks when its mask leaves it room (a big mask's label must not hide the small mark inside it).
* A label is a box in the mark's colour with black or white text, whichever has the higher WCAG
  contrast against it, and a thin outline in the text colour (the far end of the luminance scale
  from the fill), so it reads on any background.
* Font size scales with the image (legible at 256 px and 1024 px). Rendering is deterministic.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from inspector.localization.masks import Box, Proposal, decode_mask, encode_mask, mask_bbox, resize_mask
from inspector.localization.proposals import as_rgb

RGB = tuple[int, int, int]
BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
STYLES = ("fill", "contour", "both")
LABEL_GAP = 1  # pixels kept free between two label boxes
MIN_FONT_PX = 6
MAX_OWN_COVER = 0.25  # a label inside its mask may cover at most this fraction of it

# Sasha Trubetskoy's "20 simple, distinct colours" without white, black, grey and beige (they vanish
# on bright or dark parts); beyond these, golden-ratio hues.
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
)


def mark_colour(index: int) -> RGB:
    """The colour of the mark at 0-based `index`: the palette, then golden-ratio hues (deterministic)."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = ((index - len(PALETTE)) * 0.618033988749895 + 0.1) % 1.0
    value = 0.95 if index % 2 else 0.7
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def relative_luminance(colour: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as 0..255 components."""
    channels = []
    for c in colour[:3]:
        s = float(c) / 255.0
        channels.append(s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG 2 contrast ratio (1..21) between two colours."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def text_colour_for(fill: Sequence[float]) -> RGB:
    """Black or white, whichever contrasts more with `fill` (WCAG); ties go to black."""
    return WHITE if contrast_ratio(WHITE, fill) > contrast_ratio(BLACK, fill) else BLACK


@dataclass
class Mark:
    """One numbered mark: its mask in the marked image's pixels and where its label was drawn."""

    number: int  # 1-based, as printed
    mask: np.ndarray = field(repr=False)  # bool (H, W)
    anchor: tuple[int, int]  # (x, y) pixel the label box is centred on
    colour: RGB
    text_colour: RGB
    source: str = ""
    score: float = 0.0
    label: str = ""
    label_box: Box = (0, 0, 0, 0)  # x0, y0, x1, y1 (exclusive) of the drawn label

    @property
    def bbox(self) -> Box:
        """Bounding box of the mask (x1/y1 exclusive)."""
        return mask_bbox(self.mask)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass
class MarkedImage:
    """The image with marks drawn on it, and the marks (number -> mask) for reading the answer."""

    image: np.ndarray  # uint8 RGB (H, W, 3)
    marks: list[Mark] = field(default_factory=list)

    def mark(self, n: int) -> Mark:
        """The mark numbered `n` (1-based); KeyError if there is none."""
        for m in self.marks:
            if m.number == n:
                return m
        raise KeyError(f"no mark {n}: the marks are 1..{len(self.marks)}")

    def mark_map(self) -> list[dict[str, Any]]:
        """JSON-serialisable records, one per mark, in number order.

        The mask is run-length encoded after cropping to its bounding box (``"bbox"``), which
        keeps a record to a few runs per mask row instead of runs over the whole image; rebuild the
        full mask with `mask_from_record`.
        """
        records = []
        for m in self.marks:
            x0, y0, x1, y1 = m.bbox
            records.append(
                {
                    "mark": int(m.number),
                    "bbox": [int(x0), int(y0), int(x1), int(y1)],
                    "mask": encode_mask(m.mask[y0:y1, x0:x1]),
                    "anchor": [int(m.anchor[0]), int(m.anchor[1])],
                    "label_box": [int(v) for v in m.label_box],
                    "colour": [int(c) for c in m.colour],
                    "source": str(m.source),
                    "score": float(m.score),
                    "label": str(m.label),
                    "area": int(m.area),
                }
            )
        return records


def mask_from_record(record: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """The full (H, W) bool mask of a `MarkedImage.mark_map` record; ValueError if it does not fit."""
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = (int(v) for v in record["bbox"])
    if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
        raise ValueError(f"mark {record.get('mark')} box {record['bbox']} lies outside a {h}x{w} image")
    crop = decode_mask(record["mask"])
    if crop.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"mark {record.get('mark')} mask is {crop.shape}, its box is {(y1 - y0, x1 - x0)}")
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = crop
    return mask


def masks_from_map(records: Iterable[dict[str, Any]], shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Mark number -> full mask for every record of a mark map."""
    return {int(r["mark"]): mask_from_record(r, shape) for r in records}


def default_font_px(shape: tuple[int, int]) -> int:
    """Label font size for an image: 3 % of the shorter side, 11..64 px.

    11 px is about the smallest a VLM (and a person) reads reliably after the usual downscaling;
    on a 1024-px image this gives 31 px.
    """
    return int(np.clip(round(0.03 * min(shape)), 11, 64))


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: fixed bitmap font
        return ImageFont.load_default()


def _label_geometry(text: str, font: Any) -> tuple[int, int, int, int, int]:
    """(width, height, pad, text x offset, text y offset) of a label box for `text`."""
    left, top, right, bottom = font.getbbox(text)
    size = getattr(font, "size", 11)
    pad = max(2, round(size * 0.2))
    return (right - left) + 2 * pad, (bottom - top) + 2 * pad, pad, -left, -top


def _interior_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each mask pixel to the nearest non-mask pixel, the image border counting as outside."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def _pick(candidates: np.ndarray, value: np.ndarray, centre: tuple[float, float], maximise: bool) -> tuple[int, int]:
    """The candidate pixel with the best `value`, ties broken by closeness to `centre` (y, x)."""
    ys, xs = np.nonzero(candidates)
    vals = value[ys, xs]
    best = vals.max() if maximise else vals.min()
    tie = np.abs(vals - best) <= 1e-9
    ys, xs = ys[tie], xs[tie]
    d2 = (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2
    k = int(np.argmin(d2))  # row-major first among equals: deterministic
    return int(xs[k]), int(ys[k])


def _box_sums(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, bw: int, bh: int) -> np.ndarray:
    """How many `mask` pixels a label box of bw x bh centred on each (y, x) would cover."""
    h, w = mask.shape
    table = np.zeros((h + 1, w + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    y0 = np.clip(ys - bh // 2, 0, h)
    x0 = np.clip(xs - bw // 2, 0, w)
    y1 = np.clip(ys - bh // 2 + bh, 0, h)
    x1 = np.clip(xs - bw // 2 + bw, 0, w)
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _place_labels(
    masks: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], shape: tuple[int, int]
) -> list[tuple[tuple[int, int], Box]] | None:
    """Anchor and box for each label, none overlapping; None when some label cannot be placed.

    A label is centred on a pixel p with its box at (p - size // 2, p - size // 2 + size). The free
    centres for a label are those whose box stays in the image and keeps `LABEL_GAP` from every
    placed box; among free centres inside the mask the most interior one wins (preferring centres
    whose box does not cover a smaller mask, so a big mask's label never hides a mark nested in
    it), else the free centre nearest to the mask. Small masks are placed first: they have the
    fewest good centres.
    """
    h, w = shape
    order = sorted(range(len(masks)), key=lambda i: (int(np.count_nonzero(masks[i])), i))
    placed: list[Box] = []
    result: list[tuple[tuple[int, int], Box] | None] = [None] * len(masks)
    smaller = np.zeros(shape, dtype=bool)  # masks already labelled: a later label should not hide them
    for i in order:
        mask = masks[i]
        bw, bh = sizes[i]
        hw, hh = bw // 2, bh // 2
        if bw > w or bh > h:
            return None
        free = np.zeros((h, w), dtype=bool)
        free[hh : h - bh + hh + 1, hw : w - bw + hw + 1] = True
        for a0, b0, a1, b1 in placed:
            xlo, xhi = max(0, a0 - bw + hw - LABEL_GAP + 1), min(w, a1 + hw + LABEL_GAP)
            ylo, yhi = max(0, b0 - bh + hh - LABEL_GAP + 1), min(h, b1 + hh + LABEL_GAP)
            if xlo < xhi and ylo < yhi:
                free[ylo:yhi, xlo:xhi] = False
        if not free.any():
            return None
        cy, cx = ndimage.center_of_mass(mask)
        x0, y0, x1, y1 = mask_bbox(mask)
        crop = mask[y0:y1, x0:x1]  # the distance transform only matters inside the mask's box
        inside = crop & free[y0:y1, x0:x1]
        area = max(1, int(np.count_nonzero(mask)))
        if inside.any():
            ys, xs = np.nonzero(inside)
            # A label covering much of its own mask would hide what the model is asked to judge
            # (a small blowhole under its "4"): then the label goes next to the mask instead.
            if _box_sums(mask, ys + y0, xs + x0, bw, bh).min() > MAX_OWN_COVER * area:
                inside[:] = False
        if inside.any():
            ys, xs = np.nonzero(inside)
            hides = _box_sums(smaller, ys + y0, xs + x0, bw, bh) > 0
            if hides.any() and not hides.all():
                inside[ys[hides], xs[hides]] = False  # prefer spots that leave smaller marks visible
            x, y = _pick(inside, _interior_distance(crop), (cy - y0, cx - x0), maximise=True)
            x, y = x + x0, y + y0
        else:
            outside = ndimage.distance_transform_edt(~mask)
            beside = free.copy()
            fy, fx = np.nonzero(beside)
            covers = (_box_sums(mask, fy, fx, bw, bh) > 0) | (_box_sums(smaller, fy, fx, bw, bh) > 0)
            if not covers.all():  # next to the mask without covering it or a smaller mark
                beside[fy[covers], fx[covers]] = False
            x, y = _pick(beside, outside, (cy, cx), maximise=False)
        box = (x - hw, y - hh, x - hw + bw, y - hh + bh)
        placed.append(box)
        result[i] = ((x, y), box)
        smaller |= mask
    return [r for r in result if r is not None]


def _contour(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The inner boundary band of a mask (so outlines never spill outside the mask)."""
    eroded = ndimage.binary_erosion(mask, ndimage.generate_binary_structure(2, 1), iterations=thickness, border_value=0)
    return mask & ~eroded


def render_marks(
    image: np.ndarray,
    proposals: Sequence[Proposal],
    *,
    style: str = "both",
    alpha: float = 0.35,
    font_px: int | None = None,
    label_prefix: str = "",
) -> MarkedImage:
    """Draw numbered Set-of-Mark marks for `proposals` on a copy of `image`.

    `image` is uint8 RGB or gray (converted to RGB). Proposal masks should be in the image's pixels;
    masks of another size are resized (nearest neighbour). Empty masks are skipped. `style` is
    "fill" (semi-transparent fill at `alpha`), "contour" (outline only) or "both". `font_px` defaults
    to `default_font_px`; it is reduced when the labels cannot all be placed without overlap, and
    ValueError is raised when even `MIN_FONT_PX` does not fit.

    Regions the operator drew (source "operator") are numbered first, in the order given; the
    others by area, largest first. `label_prefix` marks labels that must not be confused with the
    case's marks (the references' "R1", "R2" in the marks-on-references variant).
    """
    if style not in STYLES:
        raise ValueError(f"unknown mark style {style!r}: use one of {', '.join(STYLES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is an opacity in 0..1, got {alpha}")
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    items = []
    for p in proposals:
        mask = np.asarray(p.mask, dtype=bool)
        if mask.shape != (h, w):
            mask = resize_mask(mask, (h, w))
        if mask.any():
            items.append((p, mask))
    # operator regions first, then largest first (stable for equal areas): numbered and drawn in this order
    items.sort(
        key=lambda item: (
            item[0].source != "operator",
            0 if item[0].source == "operator" else -int(np.count_nonzero(item[1])),
        )
    )
    colours = [mark_colour(i) for i in range(len(items))]
    masks = [m for _, m in items]

    canvas = rgb.astype(np.float32)
    if style in ("fill", "both") and alpha > 0:
        for mask, colour in zip(masks, colours, strict=True):
            canvas[mask] = (1.0 - alpha) * canvas[mask] + alpha * np.asarray(colour, dtype=np.float32)
    if style in ("contour", "both"):
        thickness = max(1, round(min(h, w) / 400))
        for mask, colour in zip(masks, colours, strict=True):
            canvas[_contour(mask, thickness)] = colour
    out = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))

    size = int(font_px) if font_px is not None else default_font_px((h, w))
    if size < 1:
        raise ValueError(f"font_px must be positive, got {font_px}")
    texts = [f"{label_prefix}{n + 1}" for n in range(len(items))]
    layout = None
    while layout is None:
        font = _font(size)
        geometry = [_label_geometry(t, font) for t in texts]
        layout = _place_labels(masks, [(g[0], g[1]) for g in geometry], (h, w))
        if layout is None:
            if size <= MIN_FONT_PX:
                raise ValueError(f"{len(items)} mark labels do not fit on a {w}x{h} image without overlapping")
            size = max(MIN_FONT_PX, size - max(1, size // 6))

    draw = ImageDraw.Draw(out)
    marks = []
    for n, ((p, mask), colour, text, geo, (anchor, box)) in enumerate(
        zip(items, colours, texts, geometry, layout, strict=True), start=1
    ):
        ink = text_colour_for(colour)
        x0, y0, x1, y1 = box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour, outline=ink, width=1)
        _, _, pad, dx, dy = geo
        draw.text((x0 + pad + dx, y0 + pad + dy), text, fill=ink, font=font)
        marks.append(
            Mark(
                number=n,
                mask=mask,
                anchor=anchor,
                colour=colour,
                text_colour=ink,
                source=p.source,
                score=float(p.score),
                label=p.label,
                label_box=box,
            )
        )
    return MarkedImage(image=np.asarray(out, dtype=np.uint8), marks=marks)
