"""Built-in 2D image modality: photos of parts, microscope images, medical PNG/JPEG.

It registers through the same plugin API a third-party modality would use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.imaging import IMAGE_EXTENSIONS, read_image_file, resize_max_side
from inspector.model import LoadedCase, Modality, View, ViewMap
from inspector.plugins import ModalityPlugin, PluginRegistry
from inspector.samples import DemoSet

PLUGIN_API_VERSION = 2

_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


def sniff(path: Path, head: bytes) -> bool:
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read(path: Path) -> LoadedCase:
    rgb, metadata = read_image_file(path)
    return LoadedCase(modality=Modality.IMAGE.value, data=rgb, metadata=metadata)


def render(case: LoadedCase, options: dict[str, Any]) -> list[View]:
    """The whole image, downscaled for the model, with the pixel scale back to the original."""
    image: np.ndarray = case.data
    view = resize_max_side(image, int(options.get("max_side", 1024)))
    h, w = image.shape[:2]
    vh, vw = view.shape[:2]
    view_map = ViewMap("pixel_scale", {"scale_x": w / vw, "scale_y": h / vh, "case_size": [w, h]})
    return [View(label="image", image=view, view_map=view_map)]


def offline_input(case: LoadedCase) -> np.ndarray:
    return case.data


def demo_samples(folder: Path) -> list[DemoSet]:
    """This modality's demo profile and cases (`samples.py`), for the demo project."""
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    patterns = " ".join(f"*{ext}" for ext in IMAGE_EXTENSIONS)
    registry.register_modality(
        ModalityPlugin(
            name=Modality.IMAGE.value,
            title="2D image",
            extensions=IMAGE_EXTENSIONS,
            read=read,
            render=render,
            offline_input=offline_input,
            sniff=sniff,
            viewer=f"{__name__}.viewer:ImageViewer",
            samples=demo_samples,
            default_preset="industrial",
            file_filter=f"Images ({patterns})",
        )
    )
