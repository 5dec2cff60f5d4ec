"""The decoded point cloud every reader returns, and the case metadata derived from it.

`PointCloud` is what `LoadedCase.data` holds for this modality. It is plain numpy so the viewer,
the renderer and the detector share it without copies; the viewer uses it by duck typing
(``points``, ``colors``, ``normals``, ``pose()``) because it cannot import this package by name.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.imaging import CaseReadError
from inspector.model import LoadedCase

from .pose import Pose, estimate_pose

MODALITY = "point_cloud"


@dataclass(eq=False)
class PointCloud:
    """Points (float32 N x 3) with optional colours (uint8 N x 3) and normals (float32 N x 3).

    `grid_shape` and `pixel_index` are set for organized clouds (an MVTec 3D-AD XYZ TIFF): point i
    came from the flat pixel ``pixel_index[i]`` of an H x W sensor grid.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    grid_shape: tuple[int, int] | None = None
    pixel_index: np.ndarray | None = None
    _pose: Pose | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # the last few render results: the window composes the prompt on opening a case and again on
    # inspecting it, with the same options
    _renders: dict = field(default_factory=dict, init=False, repr=False)

    def cached_render(self, key: tuple, make):
        with self._lock:
            if key in self._renders:
                return self._renders[key]
        result = make()
        with self._lock:
            self._renders[key] = result
            while len(self._renders) > 3:
                self._renders.pop(next(iter(self._renders)))
        return result

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def pose(self) -> Pose:
        """The canonical frame (centroid, PCA axes, unit radius), computed once and cached."""
        with self._lock:
            if self._pose is None:
                self._pose = estimate_pose(self.points)
            return self._pose

    def camera(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(direction towards the camera, view-up), world frame, of a named depth viewpoint
        ("front", "top", ...), so the viewer's camera presets match the renders the model sees."""
        from .cameras import ALL_VIEWS, ViewSpec

        spec = next((v for v in ALL_VIEWS if v.name == name), None) or ViewSpec("iso", 45.0, 35.26)
        _, up, back = spec.basis()
        pose = self.pose()
        return pose.to_world_direction(back), pose.to_world_direction(up)

    def bounds(self) -> tuple[list[float], list[float]]:
        return self.points.min(axis=0).tolist(), self.points.max(axis=0).tolist()


def make_cloud(
    points: np.ndarray,
    colors: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    name: str = "cloud",
    **extra: Any,
) -> tuple[PointCloud, int]:
    """Validate and normalise reader output: float32 points, finite only, colours as uint8.

    Returns the cloud and how many non-finite points were dropped (NaN rows of organized PCDs).
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CaseReadError(f"{name}: expected N x 3 coordinates, got an array of shape {pts.shape}")
    pts = pts.astype(np.float32, copy=False)
    finite = np.isfinite(pts).all(axis=1)
    dropped = int(pts.shape[0] - finite.sum())
    if dropped:
        pts = pts[finite]
        colors = None if colors is None else np.asarray(colors)[finite]
        normals = None if normals is None else np.asarray(normals)[finite]
        if extra.get("pixel_index") is not None:
            extra["pixel_index"] = extra["pixel_index"][finite]
    if pts.shape[0] == 0:
        raise CaseReadError(f"{name}: the file contains no valid points")
    cloud = PointCloud(np.ascontiguousarray(pts), _as_colors(colors), _as_normals(normals, pts.shape[0]), **extra)
    return cloud, dropped


def _as_colors(colors: np.ndarray | None) -> np.ndarray | None:
    """Colours to uint8: floats in [0, 1] are scaled, 16-bit values shifted, others clipped."""
    if colors is None:
        return None
    c = np.asarray(colors)
    if c.dtype == np.uint8:
        return np.ascontiguousarray(c[:, :3])
    c = c[:, :3]
    if np.issubdtype(c.dtype, np.floating):
        c = np.nan_to_num(c)
        if c.size and float(c.max()) <= 1.0:
            c = c * 255.0
    elif c.dtype == np.uint16 or (c.size and int(c.max()) > 255):
        c = c / 257.0
    return np.ascontiguousarray(np.clip(np.rint(c), 0, 255).astype(np.uint8))


def _as_normals(normals: np.ndarray | None, n: int) -> np.ndarray | None:
    if normals is None:
        return None
    out = np.nan_to_num(np.asarray(normals, dtype=np.float32)[:, :3])
    return np.ascontiguousarray(out) if out.shape[0] == n else None


def loaded_case(
    cloud: PointCloud, path: Path, fmt: str, fields: list[str], dropped: int = 0, **more: Any
) -> LoadedCase:
    """Wrap a cloud as a LoadedCase with the metadata the case list and the audit show."""
    lo, hi = cloud.bounds()
    metadata: dict[str, Any] = {
        "name": path.name,
        "format": fmt,
        "points": len(cloud),
        "fields": fields,
        "bounds": [[round(v, 6) for v in lo], [round(v, 6) for v in hi]],
        "has_colors": cloud.colors is not None,
        "has_normals": cloud.normals is not None,
    }
    if cloud.grid_shape is not None:
        metadata["organized"] = list(cloud.grid_shape)
    if dropped:
        metadata["dropped_non_finite"] = dropped
    metadata.update(more)
    return LoadedCase(modality=MODALITY, data=cloud, metadata=metadata)
