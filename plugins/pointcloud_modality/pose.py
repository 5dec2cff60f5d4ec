"""Pose normalisation: references and cases are rendered in one canonical frame.

A scan of a part arrives at any position, orientation and scale. Comparing depth renders of a
case with those of the references only makes sense if both are seen from the same viewpoints
relative to the part, so every cloud is first moved into its canonical frame:

1. centre on the centroid;
2. rotate onto the PCA axes, largest variance first (x, y, z = longest, middle, thinnest extent);
3. fix the signs of x and y deterministically so that the third moment (skew) of the points
   along each is positive: the heavier tail points to +axis. Skew is equivariant, so a moved copy
   of the same part lands in the same frame. When an axis is nearly symmetric (|skew| < 1e-3 of
   the spread cubed) the sign of the single most extreme point decides, which is deterministic
   but can flip for symmetric parts; the detector's flip augmentation absorbs part of that.
   z = x cross y, so the frame is a proper rotation: a render is never the mirror image of the
   part (the viewer's "front" shows what the model saw in view 1), and a mirror-image part,
   which is a different part, does not look like a normal one;
4. scale so the 99.5th percentile of distances from the centroid is 1 ("unit radius"). A
   percentile instead of the maximum keeps a few stray points (and the bump being inspected)
   from shrinking the whole render.

For clouds over 200 k points the statistics use a fixed-stride subset (same result every time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE = 200_000
RADIUS_PERCENTILE = 99.5


@dataclass(frozen=True)
class Pose:
    """canonical = (world - centre) @ rotation.T * scale; rows of `rotation` are the canonical
    axes in world coordinates (so world direction of canonical vector v is ``rotation.T @ v``)."""

    centre: np.ndarray
    rotation: np.ndarray
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        out = (np.asarray(points, dtype=np.float32) - self.centre.astype(np.float32)) @ self.rotation.T.astype(
            np.float32)
        out *= np.float32(self.scale)
        return out

    def to_world_direction(self, vector: np.ndarray) -> np.ndarray:
        return self.rotation.T @ np.asarray(vector, dtype=np.float64)

    def to_record(self) -> dict:
        return {"centre": [round(float(v), 6) for v in self.centre],
                "rotation": [[round(float(v), 6) for v in row] for row in self.rotation],
                "scale": round(float(self.scale), 9)}


def estimate_pose(points: np.ndarray) -> Pose:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[0] > SAMPLE:
        pts = pts[:: int(np.ceil(pts.shape[0] / SAMPLE))]
    centre = pts.mean(axis=0)
    centred = pts - centre
    if pts.shape[0] < 3:
        return Pose(centre, np.eye(3), 1.0 / max(float(np.abs(centred).max(initial=0.0)), 1e-9))
    cov = centred.T @ centred / pts.shape[0]
    _, vectors = np.linalg.eigh(cov)  # ascending
    axes = vectors[:, ::-1].T.copy()  # rows, largest variance first
    proj = centred @ axes.T
    for k in range(2):
        column = proj[:, k]
        spread = float(column.std()) or 1.0
        skew = float(np.mean(column ** 3)) / spread ** 3
        if abs(skew) >= 1e-3:
            sign = 1.0 if skew > 0 else -1.0
        else:
            sign = 1.0 if column[int(np.argmax(np.abs(column)))] >= 0 else -1.0
        axes[k] *= sign
    axes[2] = np.cross(axes[0], axes[1])
    distances = np.sqrt((centred ** 2).sum(axis=1))
    radius = float(np.percentile(distances, RADIUS_PERCENTILE)) if distances.size else 1.0
    return Pose(centre, axes, 1.0 / max(radius, 1e-9))
