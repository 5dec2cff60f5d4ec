"""The public viewer API: everything a modality plugin's viewer may use from `views`.

A plugin viewer (``plugins/<modality>/viewer.py``) imports from this module only, never from the
window, the panels or another viewer, the way napari plugins use ``napari.qt`` and not
``napari._qt``; `.ci` checks it with an import contract. What is here is kept stable within a
plugin API version (`inspector.plugins.PLUGIN_API_VERSION`):

* `CaseViewer`: the base class the window drives (show a case, overlay a verdict, render options).
* `ZoomableView` and the region overlays (`region_box`, `mask_overlay`, `MaskOverlay`,
  `drawn_outline`, `clip_box`, `region_mark`, `region_number_text`, `region_mask`) for 2-D views.
* `array_to_qimage` and `heat_to_rgba`: arrays to pixels, the heat-map colour map.
* the shared colours (`REGION_COLOUR`, `DRAWN_COLOUR`, `MASK_ALPHA`) and `MIN_DRAWN_SIDE`.
"""

from __future__ import annotations

from views.colormap import heat_to_rgba
from views.image_view import (
    DRAWN_COLOUR,
    MASK_ALPHA,
    MIN_DRAWN_SIDE,
    REGION_COLOUR,
    MaskOverlay,
    ZoomableView,
    array_to_qimage,
    clip_box,
    drawn_outline,
    mask_overlay,
    region_box,
    region_mark,
    region_mask,
    region_number_text,
)
from views.viewer_base import CaseViewer

__all__ = [
    "DRAWN_COLOUR",
    "MASK_ALPHA",
    "MIN_DRAWN_SIDE",
    "REGION_COLOUR",
    "CaseViewer",
    "MaskOverlay",
    "ZoomableView",
    "array_to_qimage",
    "clip_box",
    "drawn_outline",
    "heat_to_rgba",
    "mask_overlay",
    "region_box",
    "region_mark",
    "region_mask",
    "region_number_text",
]
