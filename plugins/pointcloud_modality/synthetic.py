"""Synthetic scanned parts with known defects, for the tests, the benchmark and demos.

No real point-cloud data set is available offline, so this makes one: a rounded bracket-like
body (a superellipsoid) with a cylindrical boss off-centre on its top face, so the part has a
well-defined pose. Normal parts vary in pose (random rotation, translation, scale), slightly in
shape (axes within 3 %), in point count and in sensor noise. Defective parts additionally carry
a dent or a bump: points within a radius of a random surface point pushed along the surface
normal with a smooth (Gaussian) profile; their ids are returned as the ground-truth mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticPart:
    points: np.ndarray  # float32 (N, 3)
    normals: np.ndarray  # float32 (N, 3)
    defect: str  # "", "dent" or "bump"
    defect_mask: np.ndarray  # bool (N,), points moved by the defect


def _superellipsoid(n: int, axes: np.ndarray, rng: np.random.Generator, power: float = 0.4):
    """Evenly spread surface points and normals of a superellipsoid (a rounded box).

    The parametric surface is triangulated on a fine grid and triangles are drawn in proportion
    to their area, so the density is uniform (parametric sampling piles points up at the edges).
    """

    def surface(eta: np.ndarray, omega: np.ndarray) -> np.ndarray:
        def f(w: np.ndarray) -> np.ndarray:
            return np.sign(w) * np.abs(w) ** power

        return np.stack(
            [
                axes[0] * f(np.cos(eta)) * f(np.cos(omega)),
                axes[1] * f(np.cos(eta)) * f(np.sin(omega)),
                axes[2] * f(np.sin(eta)),
            ],
            axis=-1,
        )

    eta, omega = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 121), np.linspace(-np.pi, np.pi, 241), indexing="ij")
    grid = surface(eta, omega)
    a, b, c, d = grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]
    tri = np.concatenate([np.stack([a, b, c], -2).reshape(-1, 3, 3), np.stack([a, c, d], -2).reshape(-1, 3, 3)])
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    pick = rng.choice(len(tri), size=n, p=area / area.sum())
    u, v = rng.uniform(size=(2, n))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    grad = np.sign(points) * np.abs(points / axes) ** (2 / power - 1) / axes
    normals = grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
    return points, normals


def _boss(n: int, centre: np.ndarray, radius: float, height: float, rng: np.random.Generator):
    """A cylinder standing on the top face (side wall and cap)."""
    n_cap = n // 3
    angle = rng.uniform(0, 2 * np.pi, n)
    pts = np.empty((n, 3))
    nrm = np.empty((n, 3))
    r = radius * np.sqrt(rng.uniform(0, 1, n_cap))
    pts[:n_cap] = np.stack(
        [
            centre[0] + r * np.cos(angle[:n_cap]),
            centre[1] + r * np.sin(angle[:n_cap]),
            np.full(n_cap, centre[2] + height),
        ],
        axis=1,
    )
    nrm[:n_cap] = [0, 0, 1]
    z = rng.uniform(centre[2] - 0.05, centre[2] + height, n - n_cap)
    a = angle[n_cap:]
    pts[n_cap:] = np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), z], axis=1)
    nrm[n_cap:] = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    return pts, nrm


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_part(
    seed: int,
    defect: str = "",
    n_points: int | None = None,
    amplitude: float | None = None,
    radius: float | None = None,
    pose: bool = True,
) -> SyntheticPart:
    """One part; defect in ("", "dent", "bump"). Same seed and arguments -> same cloud."""
    rng = np.random.default_rng(seed)
    n = int(n_points or rng.integers(30_000, 60_000))
    axes = np.array([1.0, 0.6, 0.3]) * rng.uniform(0.97, 1.03, 3)
    n_boss = n // 8
    body, body_n = _superellipsoid(n - n_boss, axes, rng)
    boss, boss_n = _boss(n_boss, np.array([0.55, 0.15, axes[2] * 0.8]), 0.12, 0.15, rng)
    points = np.concatenate([body, boss])
    normals = np.concatenate([body_n, boss_n])
    mask = np.zeros(n, dtype=bool)
    if defect:
        # a random body point away from the boss, on any side
        while True:
            centre_id = int(rng.integers(0, n - n_boss))
            if np.linalg.norm(points[centre_id, :2] - [0.55, 0.15]) > 0.35:
                break
        r = radius if radius is not None else rng.uniform(0.12, 0.2)
        amp = amplitude if amplitude is not None else rng.uniform(0.04, 0.08)
        dist = np.linalg.norm(points - points[centre_id], axis=1)
        profile = np.exp(-0.5 * (dist / (r / 2)) ** 2)
        profile[dist > r] = 0.0
        sign = 1.0 if defect == "bump" else -1.0
        points = points + sign * amp * profile[:, None] * normals[centre_id]
        mask = profile > 0.05
    points = points + rng.normal(0, 0.002, points.shape)
    if pose:
        rot = _rotation(rng)
        scale = rng.uniform(0.9, 1.1) * 40.0  # millimetres, say
        points = points @ rot.T * scale + rng.uniform(-100, 100, 3)
        normals = normals @ rot.T
    order = rng.permutation(n)  # scanners do not list points in surface order
    return SyntheticPart(points[order].astype(np.float32), normals[order].astype(np.float32), defect, mask[order])
