"""The height-map viewer: the shaded map, zoomable, with the offline heat map and the verdict's
boxes on top. It imports nothing from `views` but the public viewer API."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QLabel, QToolBar, QVBoxLayout

from inspector.model import LoadedCase, Verdict
from views.viewer_api import CaseViewer, ZoomableView, array_to_qimage, heat_to_rgba, region_box

from . import shaded


class HeightMapViewer(CaseViewer):
    """Shows one height map; the status line gives the height range in µm."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("heightMapViewer")
        self.scene = QGraphicsScene(self)
        self.view = ZoomableView(self.scene)
        self.picture = QGraphicsPixmapItem()
        self.heat = QGraphicsPixmapItem()
        self.heat.setZValue(1)
        self.scene.addItem(self.picture)
        self.scene.addItem(self.heat)
        self.toolbar = QToolBar()
        self._action("Fit", "F", self.view.fit, "Fit the map to the viewer")
        self.status = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)
        self._boxes: list[Any] = []

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> Any:
        return array_to_qimage(shaded(loaded.data))  # off the GUI thread

    def show_case(self, loaded: LoadedCase, display: Any = None) -> None:
        image = display if display is not None else self.prepare_display(loaded)
        self.picture.setPixmap(QPixmap.fromImage(image))
        self.scene.setSceneRect(self.picture.boundingRect())
        low, high = loaded.metadata.get("range_um", [0.0, 0.0])
        self.status.setText(f"{image.width()} × {image.height()} · heights {low:.1f} … {high:.1f} µm")
        self.show_verdict(None, None)
        self.view.fit()

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        for item in self._boxes:
            self.scene.removeItem(item)
        self._boxes = []
        self.heat.setPixmap(QPixmap())
        if heatmap is not None:
            self.heat.setPixmap(QPixmap.fromImage(array_to_qimage(heat_to_rgba(heatmap))))
            rect = self.picture.boundingRect()
            self.heat.setScale(rect.width() / max(1, heatmap.shape[1]))
        for number, region in enumerate(verdict.regions if verdict is not None else [], start=1):
            if region.x1 > region.x0 and region.y1 > region.y0:  # a region without a box has a zero box
                item = region_box(number, region)
                self.scene.addItem(item)
                self._boxes.append(item)

    def clear(self) -> None:
        self.picture.setPixmap(QPixmap())
        self.show_verdict(None, None)
        self.status.setText("")
