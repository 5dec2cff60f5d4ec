"""Video modality: MP4/MKV/AVI/MOV/WebM files and folders of numbered frames (UCSD Ped2 layout).

The reader gives a lazily decoding, thread-safe frame source; the renderer shows the model a
labelled grid (or sequence) of sampled frames; `locate` turns answered frame ranges and tile boxes
into regions with ``detail={"frames": [first, last]}`` (0-based frame numbers, as printed on the
tiles and shown by the viewer); the offline detector scores every frame against normal reference
frames. PyAV, PIL drawing and torch are imported only when a video is actually opened or scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.model import LoadedCase, Modality, Region, View
from inspector.plugins import ModalityPlugin, OfflineContext, OfflineOutcome, PluginRegistry, QueryView
from inspector.samples import DemoSet

from .container import VIDEO_EXTENSIONS  # no PyAV import yet: that happens when a video is opened

PLUGIN_API_VERSION = 2


def read(path: Path) -> LoadedCase:
    from . import reader

    return reader.read(path)


def sniff(path: Path, head: bytes) -> bool:
    from . import reader

    return reader.sniff(path, head)


def claims_folder(folder: Path) -> bool:
    from . import frames

    return frames.claims_folder(folder)


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    from . import tiles

    return tiles.render(loaded, options)


def reference_images(loaded: LoadedCase) -> list[tuple[str, np.ndarray]]:
    from . import tiles

    return tiles.reference_images(loaded)


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase | None) -> Region | None:
    from . import mapping

    return mapping.locate(item, queries, loaded)


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    from . import detect

    return detect.offline_detect(loaded, context)


def demo_samples(folder: Path) -> list[DemoSet]:
    """This modality's demo profile and cases (`samples.py`), for the demo project."""
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    patterns = " ".join(f"*{ext}" for ext in VIDEO_EXTENSIONS)
    registry.register_modality(
        ModalityPlugin(
            name=Modality.VIDEO.value,
            title="Video",
            extensions=VIDEO_EXTENSIONS,
            read=read,
            render=render,
            sniff=sniff,
            viewer=f"{__name__}.viewer:VideoViewer",
            presets=Path(__file__).resolve().parent / "presets",
            samples=demo_samples,
            default_preset="surveillance",
            file_filter=f"Videos ({patterns})",
            offline_detect=offline_detect,
            reference_images=reference_images,
            locate=locate,
            claims_folder=claims_folder,
        )
    )
