"""Demo height maps: a ground surface with fine lay marks, one with a scratch (generated, fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.model import Profile
from inspector.samples import DemoSet


def samples(folder: Path) -> list[DemoSet]:
    folder.mkdir(parents=True, exist_ok=True)
    demo = DemoSet(
        Profile(
            name="Ground surface (example plugin)",
            class_name="ground steel surface",
            modality="height_map",
            domain_preset="surface_profile",
            normal_standards="Fine parallel lay marks of even depth (about ±0.5 µm), no isolated features.",
            expected_defects="scratch across the lay\npit\nchatter marks",
        )
    )
    for seed in (1, 2):
        demo.references.append(write_height_map(folder / f"surface_reference_{seed}.npy", seed, scratch=False))
    demo.cases[write_height_map(folder / "surface_normal.npy", 3, scratch=False)] = "normal"
    demo.cases[write_height_map(folder / "surface_scratch.npy", 4, scratch=True)] = "anomalous"
    return [demo]


def write_height_map(path: Path, seed: int, scratch: bool, size: tuple[int, int] = (96, 128)) -> Path:
    """Heights in µm: lay marks along x plus noise; a scratch is a 3 µm deep diagonal groove."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float32)
    heights = 0.5 * np.sin(yy / 1.7 + rng.uniform(0, 6)) + rng.normal(0, 0.08, size)
    if scratch:
        distance = np.abs((yy - 20) - 0.5 * (xx - 10)) / np.hypot(1, 0.5)
        heights -= 3.0 * np.exp(-((distance / 1.5) ** 2)) * ((xx > 10) & (xx < 110))
    np.save(path, heights.astype(np.float32))
    return path
