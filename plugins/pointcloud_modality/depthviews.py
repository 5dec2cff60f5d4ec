"""Depth renders of a cloud for the model and the detector: N views, as a grid or one by one.

The cloud is pose-normalised first (`pose`), so every case and every reference is seen from the
same viewpoints at the same scale. Each view is rasterised (`raster`) into a depth image and a
point-index image; the depth becomes a grey picture (near = bright, background = black, one fixed
depth scale for all clouds) or, with ``shaded``, a relief picture lit from the upper left using
normals taken from the depth image itself (this works for clouds without normals and always
agrees with the depth).

The index images travel with the views in `ViewMap.arrays["point_index"]` (for a grid: one image
the size of the montage, -1 outside the tiles), which is how a box on a view becomes point ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cameras import EXTENT, ViewSpec, auto_point_size, view_specs
from .cloud import PointCloud
from .raster import rasterize

DEFAULT_VIEWS = 6
DEFAULT_SIZE = 320  # per view; a 3 x 2 grid of these stays under the prompt's 1024 px
LABEL_HEIGHT = 20
GAP = 4
BACKGROUND = (24, 26, 30)
SEE_THROUGH = 0.08  # canonical units (unit radius = 1)


@dataclass
class RenderedView:
    label: str
    spec: ViewSpec
    depth: np.ndarray  # float32, canonical units, larger = nearer, NaN = background
    index: np.ndarray  # int32, point id, -1 = background
    image: np.ndarray  # RGB uint8


@dataclass
class Montage:
    image: np.ndarray
    index: np.ndarray  # montage-sized, -1 outside tiles
    rects: list[tuple[int, int, int, int]]  # (x, y, w, h) of each view's pixels in the montage
    views: list[RenderedView] = field(default_factory=list)


def parse_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Render options with defaults and bounds (views 1..27, size 64..1024, point size 1..8 or
    automatic); values of the wrong type fall back to the defaults rather than fail an inspection."""
    options = dict(options or {})
    try:
        views = int(options.get("views", DEFAULT_VIEWS))
    except (TypeError, ValueError):
        views = DEFAULT_VIEWS
    try:
        size = int(options.get("size", DEFAULT_SIZE))
    except (TypeError, ValueError):
        size = DEFAULT_SIZE
    layout = str(options.get("layout", "grid")).lower()
    try:
        point_size = max(1, min(8, int(options["point_size"]))) if options.get("point_size") else None
    except (TypeError, ValueError):
        point_size = None  # automatic, from the point density
    return {
        "views": max(1, min(27, views)),
        "size": max(64, min(1024, size)),
        "layout": layout if layout in ("grid", "separate") else "grid",
        "shaded": bool(options.get("shaded", False)),
        "point_size": point_size,
    }


def render_views(
    cloud: PointCloud,
    n_views: int = DEFAULT_VIEWS,
    size: int = DEFAULT_SIZE,
    shaded: bool = False,
    point_size: int | None = None,
    backend: str | None = None,
) -> tuple[list[RenderedView], dict]:
    """-> (views, info) with info = what a view map records (pose, renderer, point size, scale)."""
    pose = cloud.pose()
    canonical = pose.apply(cloud.points)
    specs = view_specs(n_views)
    splat = int(point_size) if point_size else auto_point_size(len(cloud), size)
    rasters, used = rasterize(canonical, specs, size, splat, backend)
    views = []
    for k, (spec, (raw_depth, raw_index)) in enumerate(zip(specs, rasters, strict=True), start=1):
        depth, index = clean(raw_depth, raw_index, splat)
        image = shade(depth, size) if shaded else depth_to_gray(depth)
        views.append(RenderedView(f"view {k}", spec, depth, index, image))
    info = {
        "pose": pose.to_record(),
        "renderer": used,
        "point_size": splat,
        "extent": EXTENT,
        "scale": size / (2 * EXTENT),
        "image_size": [size, size],
        "points": len(cloud),
        "shaded": shaded,
    }
    return views, info


def clean(depth: np.ndarray, index: np.ndarray, point_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove see-through pixels and fill small gaps, so a view shows the front surface only.

    Between sparse splats a view can show points of the far side of the part. A pixel that has
    a nearer point (by more than `SEE_THROUGH` canonical units) within a few pixels on *both*
    opposite sides (left and right, above and below, or along a diagonal) is such a gap; a surface curving away at the
    silhouette has nearer points on one side only and is kept. Gaps get no point (-1) and, like
    other small gaps inside the silhouette, an interpolated depth for the picture only. The index
    map thus holds front-surface points only.
    """
    from scipy import ndimage

    valid = np.isfinite(depth)
    reach = point_size + 2
    t = np.where(valid, depth, -np.inf).astype(np.float32)
    padded = np.pad(t, reach, constant_values=-np.inf)
    h, w = t.shape
    sides = []
    for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)):
        side = np.full_like(t, -np.inf)
        for k in range(1, reach + 1):
            y, x = reach + dy * k, reach + dx * k
            np.maximum(side, padded[y : y + h, x : x + w], out=side)
        sides.append(side > t + SEE_THROUGH)
    through = valid & ((sides[0] & sides[1]) | (sides[2] & sides[3]) | (sides[4] & sides[5]) | (sides[6] & sides[7]))
    index = np.where(through, -1, index).astype(np.int32)
    depth = np.where(through, np.nan, depth).astype(np.float32)
    valid &= ~through
    closed = ndimage.binary_closing(valid, structure=np.ones((3, 3), bool), iterations=point_size + 1)
    holes = closed & ~valid
    if holes.any():
        sigma = max(1.0, point_size / 1.5)
        weight = ndimage.gaussian_filter(valid.astype(np.float32), sigma)
        total = ndimage.gaussian_filter(np.where(valid, depth, 0.0).astype(np.float32), sigma)
        fill = holes & (weight > 1e-3)
        depth = depth.copy()
        depth[fill] = total[fill] / weight[fill]
    return depth, index


def depth_to_gray(depth: np.ndarray) -> np.ndarray:
    """Fixed mapping from canonical depth to grey: t = -EXTENT -> 40, t = +EXTENT -> 255."""
    valid = np.isfinite(depth)
    value = np.clip((np.nan_to_num(depth) + EXTENT) / (2 * EXTENT), 0.0, 1.0)
    gray = np.where(valid, 40.0 + 215.0 * value, 0.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def shade(depth: np.ndarray, size: int) -> np.ndarray:
    """Lambertian relief from the depth image's own normals (smoothed over the splats)."""
    from scipy import ndimage

    valid = np.isfinite(depth)
    weight = ndimage.gaussian_filter(valid.astype(np.float32), 1.0)
    smooth = ndimage.gaussian_filter(np.where(valid, depth, 0.0).astype(np.float32), 1.0)
    t = np.where(weight > 1e-3, smooth / np.maximum(weight, 1e-3), 0.0)
    pixel = 2 * EXTENT / size
    dt_dy, dt_dx = np.gradient(t, pixel)
    normal = np.stack([-dt_dx, dt_dy, np.ones_like(t)], axis=-1)  # rows grow downwards: dt/dv = -dt/dy
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([-0.45, 0.55, 1.0])
    light /= np.linalg.norm(light)
    lit = np.clip(normal @ light, 0.0, 1.0)
    gray = np.where(valid, 30.0 + 225.0 * lit, 0.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def montage(views: list[RenderedView], columns: int | None = None) -> Montage:
    """Tiles in rows with a label bar above each ("view 1" ...); the index map follows the tiles."""
    n = len(views)
    size = views[0].image.shape[0]
    if columns:
        cols = columns
    elif n <= 3:
        cols = n
    else:
        cols = 2 if n == 4 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    width = cols * size + (cols + 1) * GAP
    height = rows * (size + LABEL_HEIGHT) + (rows + 1) * GAP
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    index = np.full((height, width), -1, np.int32)
    rects = []
    for k, view in enumerate(views):
        r, c = divmod(k, cols)
        x = GAP + c * (size + GAP)
        y = GAP + r * (size + LABEL_HEIGHT + GAP) + LABEL_HEIGHT
        image[y : y + size, x : x + size] = view.image
        index[y : y + size, x : x + size] = view.index
        rects.append((x, y, size, size))
    _draw_labels(image, [(view.label, x, y - LABEL_HEIGHT) for view, (x, y, _, _) in zip(views, rects, strict=True)])
    return Montage(image, index, rects, views)


def _draw_labels(image: np.ndarray, labels: list[tuple[str, int, int]]) -> None:
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=15)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    for text, x, y in labels:
        draw.text((x + 3, y + 2), text, fill=(235, 235, 235), font=font)
    image[:] = np.asarray(canvas)
