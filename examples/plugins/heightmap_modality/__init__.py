"""Example modality plugin: surface height maps from a profilometer, stored as NumPy ``.npy`` files.

Kept in the repository as the worked example of `docs/plugins.md` and discovered by
`tests/test_example_plugin.py`; it is not installed with the workstation. Copy this folder into
your plugin folder (``<user data>/plugins/``, see `inspector.paths.user_plugins_dir`) to try it.

One folder holds the whole modality:

* this file: reading, rendering for the model, the input of the built-in offline detector, and
  `register`, the only entry point the workstation calls;
* ``viewer.py``: the Qt viewer, built on the public viewer API (`views.viewer_api`) only;
* ``presets/``: the prompt wording for height maps;
* ``samples.py``: demo height maps, generated on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.imaging import CaseReadError
from inspector.model import LoadedCase, View, ViewMap
from inspector.plugins import ModalityPlugin, PluginRegistry
from inspector.samples import DemoSet

PLUGIN_API_VERSION = 2
MAX_SIDE = 4096  # a height map larger than this per side is refused, not decoded


def read(path: Path) -> LoadedCase:
    """A 2-D float array of heights (µm); anything else is refused with a message for the operator."""
    try:
        heights = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise CaseReadError(f"{path.name}: not a NumPy height map ({exc})") from exc
    if heights.ndim != 2 or not np.issubdtype(heights.dtype, np.number):
        raise CaseReadError(
            f"{path.name}: a height map is a 2-D array of numbers, this is {heights.shape} {heights.dtype}"
        )
    if max(heights.shape) > MAX_SIDE:
        raise CaseReadError(f"{path.name}: {heights.shape[1]}×{heights.shape[0]} is larger than {MAX_SIDE} per side")
    data = np.asarray(heights, dtype=np.float32)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise CaseReadError(f"{path.name}: the height map holds no finite value")
    return LoadedCase(
        modality="height_map",
        data=data,
        metadata={"size": [data.shape[1], data.shape[0]], "range_um": [float(finite.min()), float(finite.max())]},
    )


def shaded(heights: np.ndarray) -> np.ndarray:
    """Heights as an RGB picture: grey levels from a robust range, missing values black. The model,
    the offline detector and the viewer all see this same picture."""
    finite = heights[np.isfinite(heights)]
    low, high = np.percentile(finite, (1, 99)) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(heights, nan=low) - low) / max(high - low, 1e-6), 0, 1)
    grey = (scaled * 255).astype(np.uint8)
    grey[~np.isfinite(heights)] = 0
    return np.repeat(grey[:, :, None], 3, axis=2)


def render(case: LoadedCase, options: dict[str, Any]) -> list[View]:
    """One view: the shaded map at its own size (boxes the model draws are in its pixels)."""
    picture = shaded(case.data)
    h, w = picture.shape[:2]
    return [
        View(
            label="height map",
            image=picture,
            view_map=ViewMap("pixel_scale", {"scale_x": 1.0, "scale_y": 1.0, "case_size": [w, h]}),
        )
    ]


def demo_samples(folder: Path) -> list[DemoSet]:
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    registry.register_modality(
        ModalityPlugin(
            name="height_map",
            title="Surface height map",
            extensions=(".npy",),
            read=read,
            render=render,
            offline_input=lambda case: shaded(case.data),
            reference_images=lambda case: [("height map", shaded(case.data))],  # a normal map as a reference
            viewer=f"{__name__}.viewer:HeightMapViewer",
            default_preset="surface_profile",
            file_filter="Height maps (*.npy)",
            presets=Path(__file__).resolve().parent / "presets",
            samples=demo_samples,
        )
    )
