"""DICOM slice viewer dock: slice scrolling, window/level, zoom/pan, tags, findings on their slice.

What clinicians expect of a slice viewer (3D Slicer, ITK-SNAP): the wheel and the arrow / Page keys
move through the slices, Ctrl+wheel zooms, left drag pans, right drag changes the window (horizontal:
width, vertical: level), presets for the usual CT windows. Only the current slice is windowed, in
numpy, so scrolling a 300-slice series stays fluid.

Privacy: patient-identifying tags (``metadata["patient"]``) are hidden until the operator ticks
"Show patient data"; the text drawn on the image says only the slice and the window, so screenshots
do not carry patient data by default.

The state the operator looks at (slice, window, which slices the model gets) is `render_options()`;
it matches the plugin's default rendering right after `show_case`, and every change emits
`render_options_changed` so the prompt shows the model the same slice.

Regions from Set-of-Mark answers show their mask filled over the box, on their slice only, labelled
with the mark number (see `views.viewer_api.MaskOverlay`). "Draw region" (D) turns a left drag
into a rectangle the operator draws for the model (instead of panning). Drawn rectangles belong to
the slice they were drawn on: they are shown, and listed in ``render_options()["drawn_regions"]``
(slice pixels), only while that slice is current, and come back when the operator returns to it;
"Clear drawn regions" removes them from every slice, and opening another case forgets them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QTransform
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
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

from .volume import CT_PRESETS  # (label, center, width) in Hounsfield units, offered for CT

SEND_MODES: tuple[tuple[str, str], ...] = (
    ("this", "Model sees: this slice"),
    ("around", "Model sees: this slice ±1"),
    ("spread", "Model sees: 5 slices across the series"),
)
_SLICE_KEYS = {
    Qt.Key.Key_Up: -1,
    Qt.Key.Key_Down: 1,
    Qt.Key.Key_PageUp: "-page",
    Qt.Key.Key_PageDown: "+page",
    Qt.Key.Key_Home: "first",
    Qt.Key.Key_End: "last",
}


class SliceView(ZoomableView):
    """The image area: wheel = slices, Ctrl+wheel = zoom, left drag = pan, right drag = window/level."""

    slice_step = Signal(int)
    slice_key = Signal(object)  # a value of _SLICE_KEYS
    window_drag = Signal(float, float)  # dx, dy in screen pixels since the last move
    window_drag_finished = Signal()

    def __init__(self, scene: QGraphicsScene):
        super().__init__(scene)
        self._wheel_rest = 0
        self._drag_from = None

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event)
            return
        self._wheel_rest += event.angleDelta().y()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.slice_step.emit(-steps)  # wheel towards the operator (down) = next slice
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton:
            self._drag_from = event.position()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._drag_from is not None and event.buttons() & Qt.MouseButton.RightButton:
            position = event.position()
            dx, dy = position.x() - self._drag_from.x(), position.y() - self._drag_from.y()
            self._drag_from = position
            if dx or dy:
                self.window_drag.emit(dx, dy)
            event.accept()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton and self._drag_from is not None:
            self._drag_from = None
            self.window_drag_finished.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        action = _SLICE_KEYS.get(event.key())
        if action is not None and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.slice_key.emit(action)
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt override
        event.accept()  # the right button adjusts the window; no menu


class DicomViewer(CaseViewer):
    """Shows a DICOM volume slice by slice with the verdict's regions and heat map on their slice."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("dicomViewer")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._volume: Any = None  # plugins.dicom_modality.volume.DicomVolume (duck-typed: loaded by the plugin loader)
        self._metadata: dict[str, Any] = {}
        self._slice = 0
        self._window: tuple[float, float] = (0.0, 1.0)
        self._updating = False
        self._verdict: Verdict | None = None
        self._heat: np.ndarray | None = None
        self._heat_slice: int | None = None
        self.region_items: list[tuple[Region, QGraphicsRectItem]] = []
        self.mask_items: list[MaskOverlay] = []  # mask overlays, children of their region's outline
        self.drawn_by_slice: dict[int, list[tuple[float, float, float, float]]] = {}  # slice pixels
        self.drawn_items: list[tuple[int, QGraphicsRectItem]] = []
        self.shown_slice_count = 0  # slices drawn since the viewer was made (benchmarks read it)

        self.scene = QGraphicsScene(self)
        self.view = SliceView(self.scene)
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene.addItem(self.image_item)
        self.heat_item = QGraphicsPixmapItem(self.image_item)  # children share the pixel-aspect transform
        self.heat_item.setZValue(1)
        self.heat_item.setOpacity(0.6)
        self.info = QLabel("", self.view.viewport())
        self.info.setObjectName("sliceInfo")
        self.info.setStyleSheet("color: #e8e8e8; background: rgba(0,0,0,120); padding: 2px 4px;")
        self.info.move(6, 6)

        self._build_toolbar()
        self._build_slice_row()
        self._build_tag_panel()
        self.notes = QLabel("")
        self.notes.setObjectName("dicomNotes")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("background: #5a4a12; color: #fff3c4; padding: 3px 6px;")
        self.notes.hide()
        self.readout = QLabel("")
        self.readout.setObjectName("pixelReadout")

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.tag_panel)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setSizes([640, 340])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.notes)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.slice_row)
        layout.addWidget(self.readout)

        self.view.slice_step.connect(lambda step: self.set_slice(self._slice + step))
        self.view.slice_key.connect(self._slice_key)
        self.view.window_drag.connect(self._drag_window)
        self.view.cursor_moved.connect(self._show_pixel)
        self.view.rect_drawn.connect(self._rect_drawn)
        self._set_enabled(False)

    # ------------------------------------------------------------------ construction

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("DICOM", self)
        self.action_fit = self._action("Fit", "F", self.view.fit, "Fit the slice to the window (F)")
        self.action_actual = self._action("1:1", "1", lambda: self.view.set_zoom(1.0), "Actual pixel size (1)")
        self.action_zoom_in = self._action(
            "Zoom in",
            QKeySequence.StandardKey.ZoomIn,
            lambda: self.view.zoom_by(1.25),
            "Zoom in (Ctrl++ or Ctrl+wheel)",
        )
        self.action_zoom_out = self._action(
            "Zoom out",
            QKeySequence.StandardKey.ZoomOut,
            lambda: self.view.zoom_by(0.8),
            "Zoom out (Ctrl+- or Ctrl+wheel)",
        )
        self.toolbar.addSeparator()
        self.window_combo = QComboBox()
        self.window_combo.setObjectName("windowPreset")
        self.window_combo.setToolTip(
            "Window presets; right-drag on the image adjusts the window (horizontal: width, vertical: level)"
        )
        self.window_combo.setMinimumWidth(170)
        self.window_combo.activated.connect(self._preset_chosen)
        self.toolbar.addWidget(self.window_combo)
        self.width_spin = self._spin("W", "Window width")
        self.center_spin = self._spin("L", "Window level (center)")
        self.toolbar.addSeparator()
        self.action_heat = self._action(
            "Heat map",
            "H",
            self._update_overlays,
            "Show the offline detector's heat map on its slice (H)",
            checkable=True,
        )
        self.action_regions = self._action(
            "Regions", "R", self._update_overlays, "Show the verdict's regions on their slice (R)", checkable=True
        )
        self.action_next_finding = self._action(
            "Next finding", "G", self.next_finding, "Go to the next slice with a finding (G)"
        )
        self.toolbar.addSeparator()
        self.action_draw = self._action(
            "Draw region",
            "D",
            self.view.set_draw_mode,
            "Drag on the slice to draw a region for the model to look at (D)",
            checkable=True,
            checked=False,
        )
        self.action_clear_drawn = self._action(
            "Clear drawn regions", [], self.clear_drawn_regions, "Remove the rectangles you drew, on every slice"
        )
        self.toolbar.addSeparator()
        self.action_tags = self._action(
            "Tags", "T", lambda on: self.tag_panel.setVisible(on), "Show the DICOM tags (T)", checkable=True
        )

    def _spin(self, label: str, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(-1e7, 1e7)
        spin.setKeyboardTracking(False)
        spin.setToolTip(tip)
        spin.setFixedWidth(90)
        spin.valueChanged.connect(self._spins_changed)
        self.toolbar.addWidget(QLabel(f" {label} "))
        self.toolbar.addWidget(spin)
        return spin

    def _build_slice_row(self) -> None:
        self.slice_row = QWidget()
        row = QHBoxLayout(self.slice_row)
        row.setContentsMargins(6, 2, 6, 2)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("sliceSlider")
        self.slider.setInvertedControls(True)  # Up / wheel-up = previous slice, as in the image area
        self.slider.valueChanged.connect(lambda v: self.set_slice(v))
        self.spin = QSpinBox()
        self.spin.setObjectName("sliceSpin")
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(lambda v: self.set_slice(v - 1))  # operators count from 1
        self.count_label = QLabel("/ 0")
        self.findings_label = QLabel("")
        self.findings_label.setObjectName("findingsLabel")
        self.send_combo = QComboBox()
        self.send_combo.setObjectName("sendMode")
        for key, text in SEND_MODES:
            self.send_combo.addItem(text, key)
        self.send_combo.setToolTip("Which slices the model is sent (windowed as shown)")
        self.send_combo.currentIndexChanged.connect(lambda _i: self.render_options_changed.emit())
        row.addWidget(QLabel("Slice"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        row.addWidget(self.count_label)
        row.addWidget(self.findings_label)
        row.addWidget(self.send_combo)

    def _build_tag_panel(self) -> None:
        self.tag_panel = QWidget()
        column = QVBoxLayout(self.tag_panel)
        column.setContentsMargins(4, 0, 0, 0)
        self.show_patient = QCheckBox("Show patient data")
        self.show_patient.setObjectName("showPatientData")
        self.show_patient.setToolTip("Patient-identifying tags are hidden by default (screenshots, screen sharing)")
        self.show_patient.toggled.connect(self._update_patient_rows)
        self.tags = QTreeWidget()
        self.tags.setObjectName("dicomTags")
        self.tags.setHeaderLabels(["Tag", "Value"])
        self.tags.setRootIsDecorated(True)
        column.addWidget(self.show_patient)
        column.addWidget(self.tags, 1)
        self.patient_group: QTreeWidgetItem | None = None

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.slider, self.spin, self.send_combo, self.window_combo, self.width_spin, self.center_spin):
            widget.setEnabled(enabled)

    # ------------------------------------------------------------------ CaseViewer

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> dict[str, Any]:
        """The opening slice as a QImage, made in the worker thread."""
        volume = loaded.data
        index = volume.middle
        return {"slice": index, "window": tuple(volume.window), "image": array_to_qimage(volume.windowed(index))}

    def show_case(self, loaded: LoadedCase, display: Any = None) -> None:
        if loaded.data is self._volume:
            if self.render_options() != self.default_render_options():
                self.render_options_changed.emit()  # the prompt was composed for the default view
            return  # same case: keep slice, window, zoom and pan
        volume = loaded.data
        self._forget_drawn()  # rectangles belong to the case they were drawn on
        self._volume = volume
        self._metadata = dict(loaded.metadata)
        self._slice = volume.middle
        self._window = tuple(volume.window)
        self._set_enabled(True)
        self._updating = True
        try:
            for widget, top in ((self.slider, volume.n_slices - 1), (self.spin, volume.n_slices)):
                widget.setRange(0 if widget is self.slider else 1, top)
            self.slider.setPageStep(max(1, volume.n_slices // 10))
            self.spin.setSingleStep(1)
            self.count_label.setText(f"/ {volume.n_slices}")
            self._fill_window_combo()
            for widget in (self.window_combo, self.width_spin, self.center_spin):
                widget.setEnabled(not volume.is_color)
            span = volume.value_range[1] - volume.value_range[0]
            decimals = 3 if span < 10 else (1 if span < 1000 else 0)
            for spin in (self.width_spin, self.center_spin):
                spin.setDecimals(decimals)
                spin.setSingleStep(max(10**-decimals, span / 100.0))
        finally:
            self._updating = False
        aspect = volume.pixel_aspect
        self.image_item.setTransform(QTransform.fromScale(1.0, aspect))
        self._fill_tags()
        notes = [str(n) for n in self._metadata.get("notes", [])]
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self.show_verdict(None, None)
        image = None
        if isinstance(display, dict) and display.get("slice") == self._slice and display.get("window") == self._window:
            image = display.get("image")
        self._show_slice(image)
        self.scene.setSceneRect(self.image_item.sceneBoundingRect())
        self.view.fit()
        if self.render_options() != self.default_render_options():
            self.render_options_changed.emit()  # e.g. the operator kept "5 slices" from the last case

    def clear(self) -> None:
        self._forget_drawn()
        self._volume = None
        self._metadata = {}
        self.image_item.setPixmap(QPixmap())
        self.show_verdict(None, None)
        self.tags.clear()
        self.patient_group = None
        self.notes.hide()
        self.info.setText("")
        self.readout.setText("")
        self.count_label.setText("/ 0")
        self._set_enabled(False)

    def render_options(self) -> dict[str, Any]:
        if self._volume is None:
            return {}
        options: dict[str, Any] = {"slice": self._slice}
        if not self._volume.is_color:
            options["window"] = [float(self._window[0]), float(self._window[1])]
        mode = self.send_combo.currentData()
        if mode == "around":
            options["slices"] = sorted({self._volume.clamp_slice(self._slice + d) for d in (-1, 0, 1)})
        elif mode == "spread":
            options["slices"] = 5
        drawn = self.drawn_by_slice.get(self._slice)
        if drawn:
            options["drawn_regions"] = [list(box) for box in drawn]
        return options

    def default_render_options(self) -> dict[str, Any]:
        """What the plugin renders with no options: the middle slice, the default window."""
        if self._volume is None:
            return {}
        options: dict[str, Any] = {"slice": self._volume.middle}
        if not self._volume.is_color:
            options["window"] = [float(self._volume.window[0]), float(self._volume.window[1])]
        return options

    # ------------------------------------------------------------------ slices

    @property
    def current_slice(self) -> int:
        return self._slice

    @property
    def window(self) -> tuple[float, float]:
        return self._window

    def set_slice(self, index: int) -> None:
        if self._volume is None or self._updating:
            return
        index = self._volume.clamp_slice(index)
        if index == self._slice:
            self._sync_slice_widgets()
            return
        self._slice = index
        self._show_slice()
        self.render_options_changed.emit()

    def _slice_key(self, action: object) -> None:
        if self._volume is None:
            return
        page = max(1, self._volume.n_slices // 10)
        targets = {
            "-page": self._slice - page,
            "+page": self._slice + page,
            "first": 0,
            "last": self._volume.n_slices - 1,
        }
        self.set_slice(targets[action] if isinstance(action, str) else self._slice + int(action))

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        action = _SLICE_KEYS.get(event.key())
        if action is not None and self._volume is not None:
            self._slice_key(action)
            event.accept()
            return
        super().keyPressEvent(event)

    def _sync_slice_widgets(self) -> None:
        self._updating = True
        try:
            self.slider.setValue(self._slice)
            self.spin.setValue(self._slice + 1)
        finally:
            self._updating = False

    def _show_slice(self, image: QImage | None = None) -> None:
        """Window the current slice (numpy, this slice only) and show it with its overlays."""
        volume = self._volume
        if image is None:
            image = array_to_qimage(volume.windowed(self._slice, self._window))
        self.image_item.setPixmap(QPixmap.fromImage(image))
        self.shown_slice_count += 1
        self._sync_slice_widgets()
        self._update_overlays()
        self._update_info()

    def _update_info(self) -> None:
        volume = self._volume
        text = f"slice {self._slice + 1}/{volume.n_slices}"
        if not volume.is_color:
            text += f"   W {self._window[1]:g}  L {self._window[0]:g}"
        self.info.setText(text)
        self.info.adjustSize()

    # ------------------------------------------------------------------ window / level

    def _fill_window_combo(self) -> None:
        volume = self._volume
        combo = self.window_combo
        combo.clear()
        if volume.is_color:
            combo.addItem("Colour image (no window)", None)
            return
        for i, fw in enumerate(volume.file_windows):
            name = fw.name or ("from file" if i == 0 else f"from file {i + 1}")
            combo.addItem(f"File: {name} (W {fw.width:g} L {fw.center:g})", (fw.center, fw.width))
        c, w = volume.auto_window
        combo.addItem(f"Auto (W {w:.4g} L {c:.4g})", (c, w))
        if volume.units == "HU":
            for name, center, width in CT_PRESETS:
                combo.addItem(f"{name} (W {width:g} L {center:g})", (center, width))
        combo.addItem("Custom", "custom")
        self._sync_window_widgets()

    def preset_names(self) -> list[str]:
        return [self.window_combo.itemText(i) for i in range(self.window_combo.count())]

    def choose_preset(self, prefix: str) -> None:
        """Select the window preset whose label starts with `prefix` (e.g. "CT bone")."""
        for i in range(self.window_combo.count()):
            if self.window_combo.itemText(i).startswith(prefix):
                self.window_combo.setCurrentIndex(i)
                self._preset_chosen(i)
                return
        raise KeyError(prefix)

    def _preset_chosen(self, index: int) -> None:
        data = self.window_combo.itemData(index)
        if isinstance(data, tuple):
            self.set_window(*data)

    def set_window(self, center: float, width: float) -> None:
        if self._volume is None or self._volume.is_color:
            return
        width = max(float(width), 1e-6)
        window = (float(center), width)
        if window == self._window:
            return
        self._window = window
        self._sync_window_widgets()
        self._show_slice()
        self.render_options_changed.emit()

    def _sync_window_widgets(self) -> None:
        self._updating = True
        try:
            self.center_spin.setValue(self._window[0])
            self.width_spin.setValue(self._window[1])
            match = -1
            for i in range(self.window_combo.count()):
                data = self.window_combo.itemData(i)
                if isinstance(data, tuple) and np.allclose(data, self._window):
                    match = i
                    break
            if match < 0:
                match = self.window_combo.findData("custom")
            self.window_combo.setCurrentIndex(match)
        finally:
            self._updating = False

    def _spins_changed(self, *_: object) -> None:
        if not self._updating:
            self.set_window(self.center_spin.value(), self.width_spin.value())

    def _drag_window(self, dx: float, dy: float) -> None:
        """Right drag: horizontal changes the width, vertical the level, in steps tied to the value range."""
        if self._volume is None or self._volume.is_color:
            return
        low, high = self._volume.value_range
        step = max(high - low, 1e-3) / 500.0
        center, width = self._window
        self.set_window(center + dy * step, max(step, width + dx * step))

    # ------------------------------------------------------------------ verdict overlays

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        self._verdict = verdict
        for _, item in self.region_items:
            self.scene.removeItem(item)
        self.region_items = []
        self.mask_items = []
        self._heat = heatmap if self._volume is not None else None
        self._heat_slice = None
        self.heat_item.setPixmap(QPixmap())
        if self._heat is not None:
            details = verdict.details if verdict is not None else {}
            self._heat_slice = self._volume.clamp_slice(details.get("slice", self._volume.middle))
            pixmap = QPixmap.fromImage(array_to_qimage(heat_to_rgba(self._heat)))
            if (pixmap.width(), pixmap.height()) != (self._volume.width, self._volume.height):
                pixmap = pixmap.scaled(
                    self._volume.width,
                    self._volume.height,
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            self.heat_item.setPixmap(pixmap)
        if verdict is not None and self._volume is not None:
            for index, region in enumerate(verdict.regions, start=1):
                self._add_region(index, region)
        slices = self.finding_slices()
        self.findings_label.setText(
            "Findings on slice " + ", ".join(str(k + 1) for k in slices) + " (G)" if slices else ""
        )
        self._update_overlays()

    def _add_region(self, index: int, region: Region) -> None:
        where = region_slices(region)
        place = f" on slice {where[0] + 1}" if where and where[0] == where[1] else ""
        rect = region_box(index, region, tip_suffix=place, parent=self.image_item)
        overlay = mask_overlay(region, rect)
        if overlay is not None:
            self.mask_items.append(overlay)
        self.region_items.append((region, rect))

    def finding_slices(self) -> list[int]:
        """Slices holding a region or the heat map, sorted (0-based)."""
        found = set()
        for region, _ in self.region_items:
            where = region_slices(region)
            if where is not None:
                found.update(range(where[0], where[1] + 1))
        if self._heat_slice is not None:
            found.add(self._heat_slice)
        return sorted(found)

    def visible_regions(self) -> list[Region]:
        """The regions drawn on the current slice (tests and the status line read this)."""
        return [region for region, item in self.region_items if item.isVisible()]

    def heat_visible(self) -> bool:
        return self.heat_item.isVisible() and not self.heat_item.pixmap().isNull()

    def next_finding(self) -> None:
        slices = self.finding_slices()
        if slices:
            later = [k for k in slices if k > self._slice]
            self.set_slice(later[0] if later else slices[0])

    def _update_overlays(self, *_: object) -> None:
        show_regions = self.action_regions.isChecked()
        for region, item in self.region_items:
            where = region_slices(region)
            on_slice = where is None or where[0] <= self._slice <= where[1]
            item.setVisible(show_regions and on_slice)
        self.heat_item.setVisible(self.action_heat.isChecked() and self._heat_slice == self._slice)
        for index, item in self.drawn_items:
            item.setVisible(index == self._slice)

    # ------------------------------------------------------------------ drawn regions

    def _rect_drawn(self, rect: QRectF) -> None:
        if self._volume is None:
            return
        on_slice = self.image_item.mapFromScene(rect).boundingRect()  # undo the pixel-aspect transform
        box = clip_box(on_slice, self._volume.width, self._volume.height)
        if box is None:
            return
        self.drawn_by_slice.setdefault(self._slice, []).append(box)
        self.drawn_items.append((self._slice, drawn_outline(box, parent=self.image_item)))
        self.render_options_changed.emit()

    def _forget_drawn(self) -> bool:
        """Drop the drawn rectangles of every slice; True when the current slice had any."""
        had = bool(self.drawn_by_slice.get(self._slice))
        for _, item in self.drawn_items:
            if item.scene() is not None:
                self.scene.removeItem(item)
        self.drawn_items, self.drawn_by_slice = [], {}
        return had

    def clear_drawn_regions(self) -> None:
        if self._forget_drawn():
            self.render_options_changed.emit()

    # ------------------------------------------------------------------ tags and readout

    def _fill_tags(self) -> None:
        self.tags.clear()
        meta = self._metadata
        volume = self._volume
        image = QTreeWidgetItem(["Image", ""])
        rows = [
            ("Source", f"{meta.get('source', '')}, {meta.get('files', 1)} file(s)"),
            ("Slices", str(volume.n_slices)),
            ("Size", f"{volume.width} × {volume.height}"),
            ("Spacing (mm)", " × ".join(f"{v:g}" for v in volume.spacing)),
            ("Sorted by", str(meta.get("sorted_by", ""))),
            ("Transfer syntax", str(meta.get("transfer_syntax", ""))),
            (
                "Default window",
                ""
                if volume.is_color
                else f"W {volume.window[1]:g} L {volume.window[0]:g} ({meta.get('window_source', '')})",
            ),
            ("Units", volume.units),
        ]
        for key, value in rows:
            if value:
                image.addChild(QTreeWidgetItem([key, value]))
        self.tags.addTopLevelItem(image)
        tags = QTreeWidgetItem(["Tags", ""])
        for key, value in (meta.get("tags") or {}).items():
            tags.addChild(QTreeWidgetItem([key, _tag_text(value)]))
        self.tags.addTopLevelItem(tags)
        for other in meta.get("other_series") or []:
            tags.addChild(
                QTreeWidgetItem(
                    [
                        "Other series in folder",
                        f"#{other.get('series_number', '')} {other.get('modality', '')} "
                        f"({other.get('files', 0)} files)",
                    ]
                )
            )
        self.patient_group = QTreeWidgetItem(["Patient (identifying)", ""])
        for key, value in (meta.get("patient") or {}).items():
            self.patient_group.addChild(QTreeWidgetItem([key, _tag_text(value)]))
        self.tags.addTopLevelItem(self.patient_group)
        self.tags.expandAll()
        self.tags.resizeColumnToContents(0)
        self._update_patient_rows()

    def _update_patient_rows(self, *_: object) -> None:
        if self.patient_group is not None:
            self.patient_group.setHidden(not self.show_patient.isChecked())

    def visible_tag_text(self) -> str:
        """Everything the tag panel currently shows (what a screenshot would capture)."""
        lines = []

        def walk(item: QTreeWidgetItem, hidden: bool) -> None:
            hidden = hidden or item.isHidden()
            if not hidden:
                lines.append(f"{item.text(0)}: {item.text(1)}")
            for i in range(item.childCount()):
                walk(item.child(i), hidden)

        for i in range(self.tags.topLevelItemCount()):
            walk(self.tags.topLevelItem(i), False)
        return "\n".join(lines)

    def _show_pixel(self, x: float, y: float) -> None:
        if self._volume is None:
            return
        point = self.image_item.mapFromScene(x, y)
        ix, iy = int(point.x()), int(point.y())
        value = self._volume.value_at(self._slice, ix, iy)
        if value is None:
            return
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        text = f"x {ix}  y {iy}   value {shown} {self._volume.units}".rstrip()
        if self._heat is not None and self._heat_slice == self._slice:
            hh, hw = self._heat.shape[:2]
            heat = float(
                self._heat[min(hh - 1, iy * hh // self._volume.height), min(hw - 1, ix * hw // self._volume.width)]
            )
            text += f"   anomaly {heat:.2f}"
        text += f"   zoom {self.view.zoom_factor() * 100:.0f}%"
        self.readout.setText(text)


def region_slices(region: Region) -> tuple[int, int] | None:
    """The slices a region lives on (inclusive), from its detail; None = not tied to a slice."""
    detail = region.detail or {}
    if "slice" in detail:
        try:
            k = int(detail["slice"])
        except (TypeError, ValueError):
            return None
        return k, k
    span = detail.get("slices")
    if isinstance(span, list | tuple) and len(span) == 2:
        try:
            a, b = sorted(int(v) for v in span)
        except (TypeError, ValueError):
            return None
        return a, b
    return None


def _tag_text(value: Any) -> str:
    if isinstance(value, list):
        return "\\".join(_tag_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
