"""2D image viewer dock: zoom, pan, fit, 1:1, heat-map and region overlays, pixel readout.

Regions from Set-of-Mark answers carry their mark's mask (``detail["mask"]``, run lengths over the
region box) and number (``detail["mark"]``): the mask is filled semi-transparently over the box
(`MaskOverlay`, a child of the outline, so the Regions toggle hides both) and the outline is
labelled "#n" with the mark the model chose, which is the number the operator sees in the prompt.

The "Draw region" tool (D) lets the operator mark rectangles the model should look at: while it
is on, a left drag draws a rectangle instead of panning. They are kept as dashed outlines until
cleared or another case is shown, and `render_options()["drawn_regions"]` lists them in case
pixels so the prompt can offer them as operator proposals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QLabel,
    QSlider,
    QToolBar,
    QVBoxLayout,
)

from inspector.model import LoadedCase, Region, Verdict
from views.viewer_api import (
    CaseViewer,
    MaskOverlay,
    ZoomableView,
    array_to_qimage,
    clip_box,
    drawn_outline,
    heat_to_rgba,
    mask_overlay,
    region_box,
)


class ImageViewer(CaseViewer):
    """Shows one 2D case with the offline heat map and the verdict's regions on top."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.scene = QGraphicsScene(self)
        self.view = ZoomableView(self.scene)
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.heat_item = QGraphicsPixmapItem()
        self.heat_item.setZValue(1)
        self.scene.addItem(self.image_item)
        self.scene.addItem(self.heat_item)
        self.region_items: list[QGraphicsRectItem] = []
        self.mask_items: list[MaskOverlay] = []  # one per region with a usable mask (tests read them)
        self.drawn_regions: list[tuple[float, float, float, float]] = []  # operator rectangles, case pixels
        self.drawn_items: list[QGraphicsRectItem] = []
        self._image: np.ndarray | None = None
        self._heat: np.ndarray | None = None

        self.toolbar = QToolBar("Image", self)
        self.action_fit = self._action("Fit", "F", self.view.fit, "Fit the image to the window (F)")
        self.action_actual = self._action(
            "1:1", "1", lambda: self.view.set_zoom(1.0), "Show pixels at their actual size (1)"
        )
        self.action_zoom_in = self._action(
            "Zoom in", QKeySequence.StandardKey.ZoomIn, lambda: self.view.zoom_by(1.25), "Zoom in (Ctrl++)"
        )
        self.action_zoom_out = self._action(
            "Zoom out", QKeySequence.StandardKey.ZoomOut, lambda: self.view.zoom_by(0.8), "Zoom out (Ctrl+-)"
        )
        self.toolbar.addSeparator()
        self.action_heat = self._action(
            "Heat map", "H", self._update_overlay_visibility, "Show the offline detector's heat map (H)", checkable=True
        )
        self.action_regions = self._action(
            "Regions", "R", self._update_overlay_visibility, "Show the regions of the verdict (R)", checkable=True
        )
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Heat-map opacity")
        self.opacity.valueChanged.connect(lambda v: self.heat_item.setOpacity(v / 100.0))
        self.heat_item.setOpacity(0.6)
        self.toolbar.addWidget(self.opacity)
        self.toolbar.addSeparator()
        self.action_draw = self._action(
            "Draw region",
            "D",
            self.view.set_draw_mode,
            "Drag on the image to draw a region for the model to look at (D)",
            checkable=True,
            checked=False,
        )
        self.action_clear_drawn = self._action(
            "Clear drawn regions", [], self.clear_drawn_regions, "Remove the rectangles you drew"
        )
        self.readout = QLabel("")
        self.readout.setObjectName("pixelReadout")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)
        self.view.cursor_moved.connect(self._show_pixel)
        self.view.rect_drawn.connect(self._rect_drawn)

    # ------------------------------------------------------------------ CaseViewer

    def render_options(self) -> dict[str, Any]:
        """``{"drawn_regions": [[x0, y0, x1, y1], ...]}`` (case pixels) once the operator drew any."""
        if not self.drawn_regions:
            return {}
        return {"drawn_regions": [list(box) for box in self.drawn_regions]}

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> QImage:
        return array_to_qimage(loaded.data)

    def show_case(self, loaded: LoadedCase, display: QImage | None = None) -> None:
        if loaded.data is self._image:
            return  # already shown: keep the operator's zoom and pan
        self.show_image(loaded.data, display)

    def show_image(self, image: np.ndarray, display: QImage | None = None) -> None:
        self._forget_drawn()  # rectangles belong to the case they were drawn on
        self._image = image
        self.image_item.setPixmap(QPixmap.fromImage(display if display is not None else array_to_qimage(image)))
        self.scene.setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
        self.show_verdict(None, None)
        self.view.fit()

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        self._heat = heatmap
        if heatmap is not None and self._image is not None:
            rgba = heat_to_rgba(heatmap)
            pixmap = QPixmap.fromImage(array_to_qimage(rgba))
            h, w = self._image.shape[:2]
            if pixmap.width() != w or pixmap.height() != h:
                pixmap = pixmap.scaled(
                    w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            self.heat_item.setPixmap(pixmap)
        else:
            self.heat_item.setPixmap(QPixmap())
        for item in self.region_items:
            self.scene.removeItem(item)
        self.region_items = []
        self.mask_items = []
        if verdict is not None:
            for index, region in enumerate(verdict.regions, start=1):
                self._add_region(index, region)
        self._update_overlay_visibility()

    def _add_region(self, index: int, region: Region) -> None:
        rect = region_box(index, region)
        overlay = mask_overlay(region, rect)
        if overlay is not None:
            self.mask_items.append(overlay)
        self.scene.addItem(rect)
        self.region_items.append(rect)

    def clear(self) -> None:
        self._forget_drawn()
        self._image = None
        self.image_item.setPixmap(QPixmap())
        self.show_verdict(None, None)
        self.readout.setText("")

    # ------------------------------------------------------------------ drawn regions

    def _rect_drawn(self, rect: QRectF) -> None:
        if self._image is None:
            return
        box = clip_box(rect, self._image.shape[1], self._image.shape[0])  # scene pixels are case pixels
        if box is None:
            return
        self.drawn_regions.append(box)
        item = drawn_outline(box)
        self.scene.addItem(item)
        self.drawn_items.append(item)
        self.render_options_changed.emit()

    def _forget_drawn(self) -> bool:
        """Drop every drawn rectangle; True when there were any."""
        had = bool(self.drawn_regions)
        for item in self.drawn_items:
            self.scene.removeItem(item)
        self.drawn_items, self.drawn_regions = [], []
        return had

    def clear_drawn_regions(self) -> None:
        if self._forget_drawn():
            self.render_options_changed.emit()

    def _update_overlay_visibility(self, *_: object) -> None:
        self.heat_item.setVisible(self.action_heat.isChecked())
        for item in self.region_items:
            item.setVisible(self.action_regions.isChecked())

    def _show_pixel(self, x: float, y: float) -> None:
        if self._image is None:
            return
        h, w = self._image.shape[:2]
        ix, iy = int(x), int(y)
        if 0 <= ix < w and 0 <= iy < h:
            value = self._image[iy, ix]
            text = f"x {ix}  y {iy}   value {tuple(int(v) for v in np.atleast_1d(value))}"
            if self._heat is not None:
                hh, hw = self._heat.shape[:2]
                text += f"   anomaly {float(self._heat[min(hh - 1, iy * hh // h), min(hw - 1, ix * hw // w)]):.2f}"
            text += f"   zoom {self.view.zoom_factor() * 100:.0f}%"
            self.readout.setText(text)
