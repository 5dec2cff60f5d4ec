"""Pose normalisation: references and cases are rendered in one canonical frame.

A scan of a part arrives at any position, orientation and scale. Comparing depth renders of a
case with those of the references only makes sense if both are seen from the same viewpoints
relative to the part, so every cloud is first moved into its canonical frame:

1. centre on the centroid;
2. rotate onto the PCA axes, largest variance first (x, y, z = longest, middle, thinnest extent);
3. fix the axis signs deterministically: z (the thinnest extent, a scanned surface's normal, so the
   side the views look at) first, then x, each so that the third moment (skew) of the points along
   it is positive: the heavier tail points to +axis. Skew is equivariant, so a moved copy of the
   same part lands in the same frame. A skew counts only when it is clearly above its sampling
   noise (3 standard errors, sqrt(6/n) each); a symmetric axis takes the sign of its most extreme
   point, which is deterministic but arbitrary, and harmless where the part is symmetric along it.
   y = z cross x, so the frame is a proper rotation: a render is never the mirror image of the
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
            np.float32
        )
        out *= np.float32(self.scale)
        return out

    def to_world_direction(self, vector: np.ndarray) -> np.ndarray:
        return self.rotation.T @ np.asarray(vector, dtype=np.float64)

    def to_record(self) -> dict:
        return {
            "centre": [round(float(v), 6) for v in self.centre],
            "rotation": [[round(float(v), 6) for v in row] for row in self.rotation],
            "scale": round(float(self.scale), 9),
        }


def _axis_sign(column: np.ndarray, significant: float) -> float:
    spread = float(column.std()) or 1.0
    skew = float(np.mean(column**3)) / spread**3
    if abs(skew) >= significant:
        return 1.0 if skew > 0 else -1.0
    return 1.0 if column[int(np.argmax(np.abs(column)))] >= 0 else -1.0


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
    # Signs. The thinnest axis (a scanned surface's normal) decides which side the views look at,
    # so it is fixed first; the longest axis next; the middle one completes a proper rotation. A
    # sign follows the skewness only where the skewness is clearly above sampling noise (standard
    # error ~ sqrt(6/n)); below that the shape is symmetric along the axis and either sign shows
    # the same thing, so the extreme point decides (deterministic for a given scan).
    significant = 3.0 * float(np.sqrt(6.0 / proj.shape[0]))
    axes[2] *= _axis_sign(proj[:, 2], significant)
    axes[0] *= _axis_sign(proj[:, 0], significant)
    axes[1] = np.cross(axes[2], axes[0])
    distances = np.sqrt((centred**2).sum(axis=1))
    radius = float(np.percentile(distances, RADIUS_PERCENTILE)) if distances.size else 1.0
    return Pose(centre, axes, 1.0 / max(radius, 1e-9))
