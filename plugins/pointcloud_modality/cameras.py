"""The fixed viewpoints of the depth renders, in the canonical (pose-normalised) frame.

The canonical frame has x = longest, y = middle, z = thinnest axis of the part (see `pose`).
View 1 ("front") looks along -z, at the part's broad face, with +y up; azimuth turns the camera
about y, elevation lifts it towards +y, roll turns the image in its plane. The first six are
the cube faces (the default), then the eight corners, the twelve edges, and a rolled front view
as CPMF does with in-plane rotations: 27 in all. The order is fixed, so "view 3" means the same
viewpoint for every case and every reference.

Projection is orthographic with a fixed half-extent `EXTENT` (> 1, the unit radius, so the part
never touches the border): a pixel is a fixed size on the part, which is what lets the detector
compare a case with references pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXTENT = 1.15  # half-size of every view, in canonical units (unit radius = 1)
CAMERA_DISTANCE = 4.0  # for the VTK camera; orthographic, so it only sets the clipping range
MAX_VIEWS = 27
_CORNER_EL = math.degrees(math.atan(1 / math.sqrt(2)))  # 35.26 degrees


@dataclass(frozen=True)
class ViewSpec:
    name: str
    azimuth: float
    elevation: float
    roll: float = 0.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, towards-camera) unit vectors in the canonical frame."""
        az, el, roll = (math.radians(v) for v in (self.azimuth, self.elevation, self.roll))
        ry = np.array([[math.cos(az), 0, math.sin(az)], [0, 1, 0], [-math.sin(az), 0, math.cos(az)]])
        rx = np.array([[1, 0, 0], [0, math.cos(-el), -math.sin(-el)], [0, math.sin(-el), math.cos(-el)]])
        rot = ry @ rx
        right, up, back = rot[:, 0], rot[:, 1], rot[:, 2]
        if roll:
            right, up = math.cos(roll) * right + math.sin(roll) * up, -math.sin(roll) * right + math.cos(roll) * up
        return right, up, back

    def to_record(self) -> dict:
        return {
            "name": self.name,
            "azimuth": round(self.azimuth, 3),
            "elevation": round(self.elevation, 3),
            "roll": self.roll,
        }


def _all_views() -> tuple[ViewSpec, ...]:
    faces = [
        ViewSpec("front", 0, 0),
        ViewSpec("right", 90, 0),
        ViewSpec("back", 180, 0),
        ViewSpec("left", 270, 0),
        ViewSpec("top", 0, 90),
        ViewSpec("bottom", 0, -90),
    ]
    sides = ("front-right", "back-right", "back-left", "front-left")
    corners = [ViewSpec(f"upper {s}", 45 + 90 * i, _CORNER_EL) for i, s in enumerate(sides)]
    corners += [ViewSpec(f"lower {s}", 45 + 90 * i, -_CORNER_EL) for i, s in enumerate(sides)]
    edges = [ViewSpec(s, 45 + 90 * i, 0) for i, s in enumerate(sides)]
    edges += [ViewSpec(f"upper {f.name}", f.azimuth, 45) for f in faces[:4]]
    edges += [ViewSpec(f"lower {f.name}", f.azimuth, -45) for f in faces[:4]]
    return (*faces, *corners, *edges, ViewSpec("front rolled", 0, 0, 45))


ALL_VIEWS = _all_views()
assert len(ALL_VIEWS) == MAX_VIEWS


def view_specs(n: int) -> list[ViewSpec]:
    """The first n of the fixed viewpoints (n clipped to 1..27)."""
    return list(ALL_VIEWS[: max(1, min(MAX_VIEWS, int(n)))])


def project(points: np.ndarray, spec: ViewSpec, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical points -> (column, row) as float pixel coordinates and t (larger = nearer)."""
    right, up, back = (v.astype(np.float32) for v in spec.basis())
    scale = np.float32(size / (2 * EXTENT))
    col = (points @ right + np.float32(EXTENT)) * scale
    row = (np.float32(EXTENT) - points @ up) * scale
    return col, row, points @ back


def auto_point_size(n_points: int, size: int) -> int:
    """Pixels per splat so that a surface of n points shows few holes at this image size.

    About half the points face a view and a part covers about half of it, so each visible point
    owns ~size^2 / n pixels; randomly placed splats need ~3x that area to leave few gaps.
    """
    return int(np.clip(math.ceil(math.sqrt(2.7 * size * size / max(n_points, 1))), 1, 8))
