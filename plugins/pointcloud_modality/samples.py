"""Demo samples of the point-cloud modality: scans of a sheet-metal panel, one dented (generated,
fixed seed, binary PLY)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.model import Profile
from inspector.samples import DemoSet


def samples(folder: Path) -> list[DemoSet]:
    """Write the demo clouds into `folder` and describe their profile."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    cloud = DemoSet(
        Profile(
            name="Sheet-metal panel scan (demo)",
            class_name="curved sheet-metal panel",
            modality="point_cloud",
            domain_preset="point_cloud",
            normal_standards="A smooth saddle-shaped panel; the surface curves gently and evenly, no sharp changes.",
            expected_defects="dent\nbump\nmissing material",
        )
    )
    for i in range(3):
        cloud.references.append(write_ply(folder / f"panel_reference_{i}.ply", _bracket_points(rng, 30_000, False)))
    cloud.cases[write_ply(folder / "panel_normal.ply", _bracket_points(rng, 30_000, False))] = "normal"
    cloud.cases[write_ply(folder / "panel_dented.ply", _bracket_points(rng, 30_000, True))] = "anomalous"
    return [cloud]


def _bracket_points(rng: np.random.Generator, n: int, dent: bool) -> np.ndarray:
    """A curved sheet-metal panel (a shallow saddle), optionally with a round dent."""
    x = rng.uniform(-1.0, 1.0, n)
    y = rng.uniform(-0.6, 0.6, n)
    z = 0.15 * x**2 - 0.1 * y**2
    if dent:
        r2 = (x - 0.35) ** 2 + (y + 0.1) ** 2
        z -= 0.12 * np.exp(-r2 / 0.015)
    z += rng.normal(0, 0.002, n)
    return np.stack([x, y, z], axis=1).astype(np.float32)


def write_ply(path: Path, points: np.ndarray) -> Path:
    """Binary little-endian PLY with x, y, z float properties."""
    header = (
        f"ply\nformat binary_little_endian 1.0\ncomment Anomalens demo part\nelement vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    path.write_bytes(header.encode("ascii") + points.astype("<f4").tobytes())
    return path
