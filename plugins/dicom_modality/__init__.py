"""DICOM modality: single files, multi-frame files and series folders, shown as windowed slices.

Registered through the same plugin API as any third-party modality. pydicom is imported only when
a DICOM case is actually read (`reader` is loaded lazily), so the workstation starts as fast with
this plugin as without it. PNG/JPEG medical images stay with the 2D image modality.

Design notes (details in the submodules):
- `LoadedCase.data` is a `volume.DicomVolume`: (N, H, W) slices in modality units (HU for CT) or
  RGB for colour files, with spacing, the default window and MONOCHROME1 inversion at display.
- Patient-identifying tags live under ``metadata["patient"]`` only (`tags`): hidden by the viewer
  by default and never drawn into anything rendered for a model.
- Views for the model are slices windowed as shown (`rendering`): the current slice by default,
  labelled "slice k/N, W w L c", with a ``"slice"`` view map so boxes become Regions with
  ``detail={"slice": k}`` (k is the 0-based index of the sorted slice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.model import LoadedCase, Modality, Region, View
from inspector.plugins import ModalityPlugin, OfflineContext, OfflineOutcome, PluginRegistry, QueryView
from inspector.samples import DemoSet

PLUGIN_API_VERSION = 2

EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")


def sniff(path: Path, head: bytes) -> bool:
    """DICOM Part 10 files whatever their name (scanners often write names without extension)."""
    from .folders import has_dicom_magic

    return has_dicom_magic(head)


def claims_folder(folder: Path) -> bool:
    from .folders import claims_folder as claims

    return claims(folder)


def read(path: Path) -> LoadedCase:
    from . import reader

    path = Path(path)
    volume, metadata = reader.read_series(path) if path.is_dir() else reader.read_file(path)
    return LoadedCase(modality=Modality.DICOM.value, data=volume, metadata=metadata)


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    from . import rendering

    return rendering.render(loaded, options)


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase | None) -> Region | None:
    from . import rendering

    return rendering.locate(item, queries, loaded)


def offline_input(loaded: LoadedCase):
    from . import rendering

    return rendering.offline_input(loaded)


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    from . import rendering

    return rendering.offline_detect(loaded, context)


def reference_images(loaded: LoadedCase):
    from . import rendering

    return rendering.reference_images(loaded)


def demo_samples(folder: Path) -> list[DemoSet]:
    """This modality's demo profile and cases (`samples.py`), for the demo project."""
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    patterns = " ".join(f"*{ext}" for ext in EXTENSIONS)
    registry.register_modality(
        ModalityPlugin(
            name=Modality.DICOM.value,
            title="DICOM",
            extensions=EXTENSIONS,
            read=read,
            render=render,
            offline_input=offline_input,
            offline_detect=offline_detect,
            reference_images=reference_images,
            locate=locate,
            sniff=sniff,
            claims_folder=claims_folder,
            viewer=f"{__name__}.viewer:DicomViewer",
            samples=demo_samples,
            default_preset="medical",
            file_filter=f"DICOM ({patterns})",
        )
    )
