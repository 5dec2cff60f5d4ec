"""2D image viewer dock: zoom, pan, fit, 1:1, heat-map and region overlays, pixel readout."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QLabel,
    QSlider,
    QToolBar,
    QVBoxLayout,
)

from inspector.model import LoadedCase, Region, Verdict
from views.colormap import heat_to_rgba
from views.viewer_base import CaseViewer


def array_to_qimage(array: np.ndarray) -> QImage:
    """Copy an RGB/RGBA/gray uint8 array into a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    if array.ndim == 2:
        return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8).copy()
    if array.shape[2] == 4:
        return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGBA8888).copy()
    return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888).copy()


def region_box(number: int, region: Region, tip_suffix: str = "", colour: QColor | None = None,
               parent: QGraphicsItem | None = None) -> QGraphicsRectItem:
    """A numbered outline of a region (its box in scene pixels), the reason as tooltip; the number
    keeps its size at any zoom. Shared by the image, DICOM and video viewers."""
    rect = QGraphicsRectItem(QRectF(region.x0, region.y0, region.x1 - region.x0, region.y1 - region.y0), parent)
    pen = QPen(colour or QColor("#ff4d4f"))
    pen.setWidthF(2.0)
    pen.setCosmetic(True)
    rect.setPen(pen)
    rect.setBrush(QBrush(Qt.BrushStyle.NoBrush))
    rect.setZValue(2)
    tip = region.reason or region.label or f"region {number}"
    rect.setToolTip(f"{number}: {tip}{tip_suffix} (score {region.score:.2f})")
    label = QGraphicsSimpleTextItem(str(number), rect)
    label.setBrush(QColor("#ffffff"))
    font = QFont()
    font.setBold(True)
    label.setFont(font)
    label.setFlag(QGraphicsSimpleTextItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
    label.setPos(region.x0 + 2, region.y0 + 2)
    return rect


class ZoomableView(QGraphicsView):
    """A graphics view with wheel zoom around the cursor and drag-to-pan."""

    cursor_moved = Signal(float, float)
    MIN_ZOOM, MAX_ZOOM = 0.02, 64.0

    def __init__(self, scene: QGraphicsScene):
        super().__init__(scene)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setBackgroundBrush(QColor("#1e2126"))
        self.setMouseTracking(True)
        self.fit_mode = True

    def zoom_factor(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        current = self.zoom_factor()
        target = min(self.MAX_ZOOM, max(self.MIN_ZOOM, current * factor))
        self.fit_mode = False
        self.scale(target / current, target / current)

    def set_zoom(self, zoom: float) -> None:
        self.fit_mode = False
        self.resetTransform()
        self.scale(zoom, zoom)

    def fit(self) -> None:
        self.fit_mode = True
        rect = self.scene().itemsBoundingRect()
        if not rect.isEmpty():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.fit_mode:
            self.fit()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        point: QPointF = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(point.x(), point.y())
        super().mouseMoveEvent(event)


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
        self._image: np.ndarray | None = None
        self._heat: np.ndarray | None = None

        self.toolbar = QToolBar("Image", self)
        self.action_fit = self._action("Fit", "F", self.view.fit, "Fit the image to the window (F)")
        self.action_actual = self._action("1:1", "1", lambda: self.view.set_zoom(1.0),
                                          "Show pixels at their actual size (1)")
        self.action_zoom_in = self._action("Zoom in", QKeySequence.StandardKey.ZoomIn,
                                           lambda: self.view.zoom_by(1.25), "Zoom in (Ctrl++)")
        self.action_zoom_out = self._action("Zoom out", QKeySequence.StandardKey.ZoomOut,
                                            lambda: self.view.zoom_by(0.8), "Zoom out (Ctrl+-)")
        self.toolbar.addSeparator()
        self.action_heat = self._action("Heat map", "H", self._update_overlay_visibility,
                                        "Show the offline detector's heat map (H)", checkable=True)
        self.action_regions = self._action("Regions", "R", self._update_overlay_visibility,
                                           "Show the regions of the verdict (R)", checkable=True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Heat-map opacity")
        self.opacity.valueChanged.connect(lambda v: self.heat_item.setOpacity(v / 100.0))
        self.heat_item.setOpacity(0.6)
        self.toolbar.addWidget(self.opacity)
        self.readout = QLabel("")
        self.readout.setObjectName("pixelReadout")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)
        self.view.cursor_moved.connect(self._show_pixel)

    # ------------------------------------------------------------------ CaseViewer

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> QImage:
        return array_to_qimage(loaded.data)

    def show_case(self, loaded: LoadedCase, display: QImage | None = None) -> None:
        if loaded.data is self._image:
            return  # already shown: keep the operator's zoom and pan
        self.show_image(loaded.data, display)

    def show_image(self, image: np.ndarray, display: QImage | None = None) -> None:
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
                pixmap = pixmap.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            self.heat_item.setPixmap(pixmap)
        else:
            self.heat_item.setPixmap(QPixmap())
        for item in self.region_items:
            self.scene.removeItem(item)
        self.region_items = []
        if verdict is not None:
            for index, region in enumerate(verdict.regions, start=1):
                self._add_region(index, region)
        self._update_overlay_visibility()

    def _add_region(self, index: int, region) -> None:
        rect = region_box(index, region)
        self.scene.addItem(rect)
        self.region_items.append(rect)

    def clear(self) -> None:
        self._image = None
        self.image_item.setPixmap(QPixmap())
        self.show_verdict(None, None)
        self.readout.setText("")

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
