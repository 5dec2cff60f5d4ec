"""Zoomable 2-D views and region overlays that the image, DICOM and video viewers share.

Part of the public viewer API (`views.viewer_api`): plugin viewers import it from there.

Regions from Set-of-Mark answers carry their mark's mask (``detail["mask"]``, run lengths over the
region box) and number (``detail["mark"]``): the mask is filled semi-transparently over the box
(`MaskOverlay`, a child of the outline, so a Regions toggle hides both) and the outline is
labelled "#n" with the mark the model chose, which is the number the operator sees in the prompt.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from inspector.localization.masks import decode_mask, resize_mask
from inspector.model import Region

log = logging.getLogger(__name__)

REGION_COLOUR = QColor("#ff4d4f")
DRAWN_COLOUR = QColor("#22d3ee")  # operator-drawn rectangles: cyan, dashed, never mistaken for findings
MASK_ALPHA = 90
MIN_DRAWN_SIDE = 2.0  # case pixels; a click or a twitch is not a region


def array_to_qimage(array: np.ndarray) -> QImage:
    """Copy an RGB/RGBA/gray uint8 array into a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    if array.ndim == 2:
        return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8).copy()
    if array.shape[2] == 4:
        return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGBA8888).copy()
    return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888).copy()


def region_mark(region: Region) -> int | None:
    """The Set-of-Mark number the region came from, if any (``detail["mark"]``)."""
    value = (region.detail or {}).get("mark")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def region_number_text(number: int, region: Region) -> str:
    """What a region is called on screen: "#3" for mark 3 (the number in the prompt), else its index."""
    mark = region_mark(region)
    return f"#{mark}" if mark is not None else str(number)


def region_mask(region: Region) -> np.ndarray | None:
    """The region's decoded mask (a grid over its box), or None when it has none or it is damaged."""
    rle = (region.detail or {}).get("mask")
    if not isinstance(rle, dict):
        return None
    try:
        mask = decode_mask(rle)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("region mask does not decode (%s); only the outline is drawn", exc)
        return None
    return mask if mask.size and mask.any() else None


class MaskOverlay(QGraphicsPixmapItem):
    """A region's mask filled in the region colour (alpha `MASK_ALPHA`), stretched over its box.

    It is a child of the outline so the Regions toggle (and a DICOM slice change) shows and hides
    both. `mask` is the decoded mask; `box` the region box in the parent's coordinates.
    """

    def __init__(self, mask: np.ndarray, region: Region, colour: QColor, parent: QGraphicsItem):
        super().__init__(parent)
        self.mask = mask
        self.box = (float(region.x0), float(region.y0), float(region.x1), float(region.y1))
        h, w = mask.shape
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[mask] = (colour.red(), colour.green(), colour.blue(), MASK_ALPHA)
        self.setPixmap(QPixmap.fromImage(array_to_qimage(rgba)))
        self.setTransformationMode(Qt.TransformationMode.FastTransformation)  # crisp mask edges at any zoom
        self.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self.setTransform(QTransform.fromScale((region.x1 - region.x0) / w, (region.y1 - region.y0) / h))
        self.setPos(region.x0, region.y0)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent, True)
        self.setToolTip(parent.toolTip())

    def scene_rect(self) -> QRectF:
        """Where the overlay lies in the scene (the region box, through any parent transform)."""
        return self.sceneBoundingRect()

    def case_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The highlighted pixels as a case-sized (h, w) boolean mask: the mask resized to the region
        box (rounded to whole case pixels), the parts outside the case cut off."""
        h, w = shape
        out = np.zeros((h, w), bool)
        x0, y0, x1, y1 = (round(v) for v in self.box)
        if x1 <= x0 or y1 <= y0:
            return out
        grid = resize_mask(self.mask, (y1 - y0, x1 - x0))
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if cx1 > cx0 and cy1 > cy0:
            out[cy0:cy1, cx0:cx1] = grid[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return out


def mask_overlay(region: Region, outline: QGraphicsRectItem, colour: QColor | None = None) -> MaskOverlay | None:
    """The mask overlay of a region, parented to its outline; None when the region has no usable mask."""
    mask = region_mask(region)
    if mask is None or region.x1 <= region.x0 or region.y1 <= region.y0:
        return None
    return MaskOverlay(mask, region, colour or REGION_COLOUR, outline)


def region_box(
    number: int, region: Region, tip_suffix: str = "", colour: QColor | None = None, parent: QGraphicsItem | None = None
) -> QGraphicsRectItem:
    """A numbered outline of a region (its box in scene pixels), the reason as tooltip; the number
    keeps its size at any zoom. Shared by the image, DICOM and video viewers. A region from a mark is
    labelled with the mark number ("#3"), the one the model answered with."""
    rect = QGraphicsRectItem(QRectF(region.x0, region.y0, region.x1 - region.x0, region.y1 - region.y0), parent)
    pen = QPen(colour or REGION_COLOUR)
    pen.setWidthF(2.0)
    pen.setCosmetic(True)
    rect.setPen(pen)
    rect.setBrush(QBrush(Qt.BrushStyle.NoBrush))
    rect.setZValue(2)
    name = region_number_text(number, region)
    tip = region.reason or region.label or f"region {name}"
    rect.setToolTip(f"{name}: {tip}{tip_suffix} (score {region.score:.2f})")
    label = QGraphicsSimpleTextItem(name, rect)
    label.setBrush(QColor("#ffffff"))
    font = QFont()
    font.setBold(True)
    label.setFont(font)
    label.setFlag(QGraphicsSimpleTextItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
    label.setPos(region.x0 + 2, region.y0 + 2)
    return rect


def drawn_outline(box: tuple[float, float, float, float], parent: QGraphicsItem | None = None) -> QGraphicsRectItem:
    """The dashed cyan outline of an operator-drawn rectangle (in the parent's coordinates)."""
    x0, y0, x1, y1 = box
    rect = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0), parent)
    pen = QPen(DRAWN_COLOUR)
    pen.setWidthF(2.0)
    pen.setCosmetic(True)
    pen.setStyle(Qt.PenStyle.DashLine)
    rect.setPen(pen)
    rect.setBrush(QBrush(Qt.BrushStyle.NoBrush))
    rect.setZValue(3)
    rect.setToolTip("Drawn region (the model is asked to look here)")
    return rect


def clip_box(rect: QRectF, width: float, height: float) -> tuple[float, float, float, float] | None:
    """A drawn rectangle in case pixels, clipped to the image; None when too small to mean anything."""
    x0, x1 = sorted((rect.left(), rect.right()))
    y0, y1 = sorted((rect.top(), rect.bottom()))
    x0, x1 = max(0.0, x0), min(float(width), x1)
    y0, y1 = max(0.0, y0), min(float(height), y1)
    if x1 - x0 < MIN_DRAWN_SIDE or y1 - y0 < MIN_DRAWN_SIDE:
        return None
    return (float(x0), float(y0), float(x1), float(y1))


class ZoomableView(QGraphicsView):
    """A graphics view with wheel zoom around the cursor and drag-to-pan.

    With `set_draw_mode(True)` a left drag draws a rectangle (a dashed rubber band while dragging)
    and emits `rect_drawn` with it in scene coordinates, instead of panning.
    """

    cursor_moved = Signal(float, float)
    rect_drawn = Signal(QRectF)
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
        self.draw_mode = False
        self._draw_from: QPointF | None = None
        self._rubber: QGraphicsRectItem | None = None

    def set_draw_mode(self, on: bool) -> None:
        """Left drag draws rectangles (on) or pans (off); an unfinished rectangle is dropped."""
        self.draw_mode = bool(on)
        self._drop_rubber()
        self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
        if on:  # ScrollHandDrag sets its open hand itself
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def _drop_rubber(self) -> None:
        if self._rubber is not None and self._rubber.scene() is not None:
            self.scene().removeItem(self._rubber)
        self._rubber, self._draw_from = None, None

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.draw_mode and event.button() == Qt.MouseButton.LeftButton:
            self._drop_rubber()
            self._draw_from = self.mapToScene(event.position().toPoint())
            self._rubber = drawn_outline(
                (self._draw_from.x(), self._draw_from.y(), self._draw_from.x(), self._draw_from.y())
            )
            self._rubber.setZValue(10)
            self.scene().addItem(self._rubber)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._draw_from is not None and event.button() == Qt.MouseButton.LeftButton:
            rect = QRectF(self._draw_from, self.mapToScene(event.position().toPoint())).normalized()
            self._drop_rubber()
            self.rect_drawn.emit(rect)
            event.accept()
            return
        super().mouseReleaseEvent(event)

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
            self.zoom_by(1.25**steps)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.fit_mode:
            self.fit()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        point: QPointF = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(point.x(), point.y())
        if self._draw_from is not None and self._rubber is not None:
            self._rubber.setRect(QRectF(self._draw_from, point).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)
