"""Demo sample of the time-series modality: a cooling-line temperature sensor (generated, fixed seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.model import Profile
from inspector.samples import DemoSet


def samples(folder: Path) -> list[DemoSet]:
    """Write the demo series into `folder` (once) and describe its profile."""
    folder.mkdir(parents=True, exist_ok=True)
    series = DemoSet(
        Profile(
            name="Cooling line sensor (demo)",
            class_name="coolant temperature",
            modality="time_series",
            domain_preset="time_series",
            normal_standards="A daily cycle of about ±4 °C around 60 °C, readings every 10 minutes, noise under 1 °C.",
            expected_defects="spikes above the cycle\nsustained level shifts (fouled cooler)\nmissing readings",
        )
    )
    series.cases[write_sensor_series(folder / "coolant_temperature.csv")] = "anomalous"
    return [series]


def write_sensor_series(path: Path, seed: int = 7) -> Path:
    """Two weeks of a 10-minute temperature signal: daily cycle, noise, a spike and a level shift."""
    rng = np.random.default_rng(seed)
    n = 14 * 24 * 6
    t = np.arange(n)
    values = 60 + 4 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.4, n)
    values[1200:1206] += 9  # a short overheating spike
    values[1500:1650] += 3.5  # a sustained shift (a fouled cooler)
    values[1900] = np.nan  # a dropped reading
    start = np.datetime64("2026-03-02T00:00")
    stamps = start + t * np.timedelta64(10, "m")
    lines = ["timestamp,temperature_c"]
    lines += [
        f"{str(s).replace('T', ' ')},{'' if np.isnan(v) else f'{v:.3f}'}" for s, v in zip(stamps, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
