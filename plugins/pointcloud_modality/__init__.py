"""Point-cloud modality: PLY, PCD, XYZ/TXT, NPY/NPZ and MVTec 3D-AD XYZ TIFF scans.

The model cannot look at a cloud, so it sees depth renders from fixed viewpoints around the part
in a canonical pose (as CPMF and the paper do), as one labelled grid or as separate images; each
render keeps a pixel -> point map, so a box the model draws on a view becomes the ids of the
points it covers, and the viewer highlights them on the cloud. The offline detector scores the
same renders against the profile's reference clouds and maps its heat back to points.

Heavy modules (VTK, tifffile, scipy) are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from inspector.model import LoadedCase, View
from inspector.plugins import ModalityPlugin, OfflineContext, OfflineOutcome, PluginRegistry
from inspector.samples import DemoSet

from . import readers

PLUGIN_API_VERSION = 2
NAME = "point_cloud"


def read(path: Path) -> LoadedCase:
    return readers.read(path)


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    """Depth views for the model: options views (1..27, default 6), layout grid|separate,
    shaded (relief instead of plain depth), size (px per view, default 320), point_size."""
    from .depthviews import montage, parse_options, render_views
    from .mapping import grid_view, separate_views

    opts = parse_options(options)

    def make() -> list[View]:
        views, info = render_views(loaded.data, opts["views"], opts["size"], opts["shaded"], opts["point_size"])
        if opts["layout"] == "separate":
            return separate_views(views, info)
        return [grid_view(montage(views), info)]

    key = (*sorted(opts.items()), os.environ.get("ANOMALENS_POINT_RENDERER", ""))
    return list(loaded.data.cached_render(key, make))


def locate(item: dict[str, Any], queries: list, loaded: LoadedCase | None):
    from .mapping import locate as locate_item

    return locate_item(item, queries, loaded)


def offline_detect(loaded: LoadedCase, context: OfflineContext) -> OfflineOutcome:
    from .detect import offline_detect as detect

    return detect(loaded, context)


def reference_images(loaded: LoadedCase):
    from .detect import reference_images as references

    return references(loaded)


def demo_samples(folder: Path) -> list[DemoSet]:
    """This modality's demo profile and cases (`samples.py`), for the demo project."""
    from .samples import samples

    return samples(folder)


def register(registry: PluginRegistry) -> None:
    """Register with a raised sniff priority.

    The image plugin claims every TIFF by its magic bytes, so an MVTec 3D-AD XYZ TIFF would be
    opened as a (failing) image. This plugin's sniffer is strict (float 3-sample TIFFs, PLY and PCD
    headers, cloud-shaped NPY/NPZ, numeric-row text) and leaves everything else alone, so it is
    asked first.
    """
    plugin = ModalityPlugin(
        name=NAME,
        title="Point cloud",
        extensions=readers.EXTENSIONS,
        read=read,
        render=render,
        sniff=readers.sniff,
        viewer=f"{__name__}.viewer:PointCloudViewer",
        presets=Path(__file__).resolve().parent / "presets",
        samples=demo_samples,
        default_preset="point_cloud",
        file_filter="Point clouds (*.ply *.pcd *.xyz *.pts *.txt *.npy *.npz *.tif *.tiff)",
        offline_detect=offline_detect,
        reference_images=reference_images,
        locate=locate,
        sniff_priority=10,
    )
    registry.register_modality(plugin)
