"""The decoded content of a DICOM case: a stack of slices in modality units, and how to show them.

Kept free of pydicom and Qt so that the renderer (worker threads), the offline detector and the viewer
(GUI thread) share one windowing implementation: what the operator sees and what the model is sent
are the same pixels.

Storage: grey volumes are kept in modality units after the rescale (Hounsfield units for CT). When
every value is an integer that fits in int16 (the usual CT/MR case: slope 1, integer intercept) the
volume is stored as int16, otherwise as float32; a 300-slice 512x512 CT series then takes 157 MB
instead of 315 MB, which matters with several decoded cases cached. `slice_values` always gives
float32. Colour files (RGB, YBR, palette) are stored as RGB uint8 and are not windowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Window presets offered by the viewer, as (name, center, width). CT values are Hounsfield units.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("CT brain", 40.0, 80.0),
    ("CT subdural", 75.0, 200.0),
    ("CT soft tissue", 50.0, 400.0),
    ("CT lung", -600.0, 1500.0),
    ("CT bone", 500.0, 2000.0),
)

AUTO_PERCENTILES = (0.5, 99.5)  # robust auto window: ignores a few hot pixels and the air/padding
_MAX_SAMPLES = 2_000_000  # auto-window statistics on a strided sample, so huge series stay fast


@dataclass
class FileWindow:
    """A window stored in the file (WindowCenter/WindowWidth, with its explanation if any)."""

    center: float
    width: float
    name: str = ""


@dataclass
class DicomVolume:
    """Slices of one DICOM file or series, sorted, in modality units (see the module docstring)."""

    voxels: np.ndarray  # (N, H, W) int16/float32 modality units, or (N, H, W, 3) uint8 RGB
    name: str  # file or folder name, for reference image names
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # (between slices, rows, columns) in mm
    window: tuple[float, float] = (0.0, 1.0)  # the default (center, width): from the file, else auto
    window_source: str = "auto"  # "file" or "auto"
    auto_window: tuple[float, float] = (0.0, 1.0)
    file_windows: list[FileWindow] = field(default_factory=list)
    invert: bool = False  # MONOCHROME1: low values are shown bright
    units: str = ""  # "HU" for CT
    value_range: tuple[float, float] = (0.0, 1.0)  # robust min/max, for the window drag sensitivity

    # ------------------------------------------------------------------ shape

    @property
    def n_slices(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def height(self) -> int:
        return int(self.voxels.shape[1])

    @property
    def width(self) -> int:
        return int(self.voxels.shape[2])

    @property
    def is_color(self) -> bool:
        return self.voxels.ndim == 4

    @property
    def middle(self) -> int:
        """The slice shown and sent by default."""
        return self.n_slices // 2

    @property
    def pixel_aspect(self) -> float:
        """Height of a pixel over its width (PixelSpacing rows/columns); 1.0 for square pixels."""
        row, col = self.spacing[1], self.spacing[2]
        return row / col if row > 0 and col > 0 else 1.0

    def clamp_slice(self, index: Any) -> int:
        """Any slice request (possibly junk from a profile) as a valid index."""
        try:
            value = int(index)
        except (TypeError, ValueError):
            return self.middle
        return min(max(value, 0), self.n_slices - 1)

    # ------------------------------------------------------------------ values and windowing

    def slice_values(self, index: int) -> np.ndarray:
        """One slice in modality units as float32 (H, W); colour slices as float32 (H, W, 3)."""
        return self.voxels[self.clamp_slice(index)].astype(np.float32)

    def value_at(self, index: int, x: int, y: int) -> float | tuple[int, ...] | None:
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        value = self.voxels[self.clamp_slice(index), y, x]
        if self.is_color:
            return tuple(int(v) for v in value)
        return float(value)

    def windowed(self, index: int, window: tuple[float, float] | None = None) -> np.ndarray:
        """The slice as displayed: uint8 grey (H, W) through the window, or RGB (H, W, 3) for colour."""
        data = self.voxels[self.clamp_slice(index)]
        if self.is_color:
            return data
        center, width = window if window is not None else self.window
        return apply_window(data, center, width, self.invert)

    def rgb(self, index: int, window: tuple[float, float] | None = None) -> np.ndarray:
        """The displayed slice as RGB uint8 (what the model and the offline detector see)."""
        shown = self.windowed(index, window)
        if shown.ndim == 3:
            return np.ascontiguousarray(shown)
        return np.repeat(shown[:, :, None], 3, axis=2)


def apply_window(values: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """Linear window/level to uint8: center - width/2 shows black, center + width/2 white.

    One slice at a time in float32 (a 512x512 slice takes about a millisecond), so dragging the
    window stays fluid on any series size. MONOCHROME1 is inverted here, at display.
    """
    width = max(float(width), 1e-6)
    low = float(center) - width / 2.0
    scale = np.float32(255.0 / width)
    out = values.astype(np.float32, copy=True)
    out -= np.float32(low)
    out *= scale
    np.clip(out, 0.0, 255.0, out=out)
    result = out.astype(np.uint8)
    if invert:
        np.subtract(255, result, out=result)
    return result


def robust_range(voxels: np.ndarray) -> tuple[float, float]:
    """The AUTO_PERCENTILES of the values (on a strided sample); min/max when those coincide."""
    flat = voxels.reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLES)
    sample = flat[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, AUTO_PERCENTILES))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    return low, high


def auto_window(voxels: np.ndarray) -> tuple[float, float]:
    """(center, width) covering the robust value range; width 1 for a constant image."""
    low, high = robust_range(voxels)
    width = high - low if high > low else 1.0
    return (low + high) / 2.0, width
