"""Built-in time-series modality: sensor tables (CSV, TSV, Parquet) with or without a time column.

Reader, VLM renderer (the series plotted with readable time or index ticks, long series split into
overlapping windows), locator (ranges in the plot's axis units, or boxes on a plot, back to samples
and times), a streaming offline detector that needs no references, and the pyqtgraph viewer named
by import string. pandas/pyarrow are imported only when a series is read, so start-up stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.model import LoadedCase, Modality, Region, View
from inspector.plugins import ModalityPlugin, OfflineContext, OfflineOutcome, PluginRegistry, QueryView
from inspector.samples import DemoSet

PLUGIN_API_VERSION = 2

EXTENSIONS = (".csv", ".tsv", ".tab", ".parquet", ".pq")


def sniff(path: Path, head: bytes) -> bool:
    from . import reader

    return reader.sniff(path, head)


def read(path: Path) -> LoadedCase:
    from . import reader

    series, metadata = reader.read_series(Path(path))
    return LoadedCase(modality=Modality.TIME_SERIES.value, data=series, metadata=metadata)


def read_copy(path: Path, origin: Path) -> LoadedCase:
    """An embedded copy: labels are looked up beside the original file (the NAB tree)."""
    from . import reader

    series, metadata = reader.read_series(Path(path), origin=Path(origin))
    return LoadedCase(modality=Modality.TIME_SERIES.value, data=series, metadata=metadata)


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    from . import rendering as renderer

    return renderer.render(loaded.data, options)


def locate(item: dict[str, Any], queries: list[QueryView], loaded: LoadedCase) -> Region | None:
    from . import locating as locator

    return locator.locate(item, queries, loaded.data)


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    from . import offline

    return offline.offline_detect(loaded.data, context)


def reference_images(loaded: LoadedCase) -> list[tuple[str, np.ndarray]]:
    """A normal series as references: its plot images, exactly as the model sees a case."""
    from . import rendering as renderer

    stem = Path(loaded.data.name or "series").stem
    return [(f"{stem} {view.label}", view.image) for view in renderer.render(loaded.data, {})]


def demo_samples(folder: Path) -> list[DemoSet]:
    """This modality's demo profile and cases (`samples.py`), for the demo project."""
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    registry.register_modality(
        ModalityPlugin(
            name=Modality.TIME_SERIES.value,
            title="Time series",
            extensions=EXTENSIONS,
            read=read,
            read_copy=read_copy,
            render=render,
            sniff=sniff,
            viewer=f"{__name__}.viewer:TimeSeriesViewer",
            presets=Path(__file__).resolve().parent / "presets",
            samples=demo_samples,
            default_preset="time_series",
            file_filter="Time series (*.csv *.tsv *.tab *.parquet *.pq)",
            offline_detect=offline_detect,
            reference_images=reference_images,
            locate=locate,
        )
    )
