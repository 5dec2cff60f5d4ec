"""Video viewer dock: frame display, play/pause, stepping, and a timeline of what is anomalous when.

The case's `LoadedCase.data` is the video modality's frame source (``frame_count``, ``fps``,
``size``, ``frame(i)``, ``cached(i)``). Frames are decoded on a background thread, latest request
wins, so dragging the timeline or playing a 1080p video never blocks the window; during playback
frames are dropped rather than the clock slowed when decoding cannot keep up.

The timeline paints the ground truth (from the case's labels, amber), the verdict's frame ranges
(red), the offline detector's per-frame scores (a curve, 0.5 = threshold), the operator's range
selection (blue) and the cursor. Click or drag seeks; Shift+drag selects a range, which then is
what the model is shown (`render_options` -> ``{"frames": [a, b]}``). Frame numbers are 0-based,
the same numbers printed on the tiles the model sees.

A box region from a Set-of-Mark answer carries its mark's mask: it is filled over the box on that
frame only, and the outline is labelled with the mark number (`views.viewer_api.MaskOverlay`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from inspector.model import LoadedCase, Region, Verdict
from views.viewer_api import (
    CaseViewer,
    MaskOverlay,
    ZoomableView,
    array_to_qimage,
    heat_to_rgba,
    mask_overlay,
    region_box,
)

GT_COLOUR = QColor("#f0a020")
VERDICT_COLOUR = QColor("#ff4d4f")
SCORE_COLOUR = QColor("#4fc3f7")
SELECTION_COLOUR = QColor(80, 140, 255, 70)
DEFAULT_SAMPLES = 9  # what the renderer samples when no option is given


def _ranges(regions: list[Region]) -> list[tuple[int, int]]:
    out = []
    for region in regions:
        frames = region.detail.get("frames") if isinstance(region.detail, dict) else None
        if isinstance(frames, (list, tuple)) and len(frames) == 2 and region.x1 <= region.x0:
            out.append((int(frames[0]), int(frames[1])))
    return out


def _boxes(regions: list[Region]) -> list[tuple[int, int, Region]]:
    out = []
    for region in regions:
        frames = region.detail.get("frames") if isinstance(region.detail, dict) else None
        if isinstance(frames, (list, tuple)) and len(frames) == 2 and region.x1 > region.x0:
            out.append((int(frames[0]), int(frames[1]), region))
    return out


class FrameDecoder(QObject):
    """Decodes requested frames on a daemon thread; the newest request replaces older ones.

    Only the frame index travels through the Qt signal; the QImage is handed over through a
    locked slot and taken with `take` on the GUI thread.
    """

    frame_ready = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._wanted: tuple[Any, int] | None = None
        self._done: dict[int, tuple[Any, QImage | None, str]] = {}
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="video-decoder", daemon=True)
        self._thread.start()

    def request(self, source: Any, index: int) -> None:
        with self._cond:
            self._wanted = (source, index)
            self._cond.notify()

    def take(self, source: Any, index: int) -> tuple[QImage | None, str] | None:
        with self._cond:
            found = self._done.pop(index, None)
            self._done.clear()
        if found is None or found[0] is not source:
            return None
        return found[1], found[2]

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None:
                    self._cond.wait()
                source, index = self._wanted
                self._wanted = None
                self.busy = True
            image, error = None, ""
            try:
                image = array_to_qimage(source.frame(index))
            except Exception as exc:  # noqa: BLE001 - a damaged frame is shown as a message, not a crash
                error = str(exc) or type(exc).__name__
            with self._cond:
                self._done[index] = (source, image, error)
                self.busy = self._wanted is not None
            self.frame_ready.emit(index)


class Timeline(QWidget):
    """Frames along x: ground truth, verdict ranges, score curve, selection and cursor."""

    seek_requested = Signal(int)
    selection_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("videoTimeline")
        self.setMinimumHeight(78)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # so the viewer's keys work after a click on it
        self.frame_count = 0
        self.fps = 25.0
        self.cursor = 0
        self.gt_ranges: list[tuple[int, int]] = []
        self.verdict_ranges: list[tuple[int, int]] = []
        self.box_frames: list[int] = []
        self.scores: np.ndarray | None = None
        self.selection: tuple[int, int] | None = None
        self._anchor: int | None = None
        self._margin = 8

    def set_video(self, frame_count: int, fps: float) -> None:
        self.frame_count, self.fps = frame_count, fps
        self.cursor, self.selection = 0, None
        self.gt_ranges, self.verdict_ranges, self.box_frames, self.scores = [], [], [], None
        self.update()

    def x_for_frame(self, frame: float) -> float:
        width = max(1, self.width() - 2 * self._margin)
        return self._margin + (frame + 0.5) * width / max(1, self.frame_count)

    def frame_at(self, x: float) -> int:
        width = max(1, self.width() - 2 * self._margin)
        frame = int((x - self._margin) * self.frame_count / width)
        return max(0, min(self.frame_count - 1, frame))

    def _span(self, a: int, b: int) -> tuple[float, float]:
        left = self.x_for_frame(a) - self._half()
        return left, max(2.0, self.x_for_frame(b) + self._half() - left)

    def _half(self) -> float:
        return 0.5 * max(1, self.width() - 2 * self._margin) / max(1, self.frame_count)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        h = self.height()
        painter.fillRect(self.rect(), QColor("#15181c"))
        if self.frame_count <= 0:
            return
        bar_l, bar_r = self._margin, self.width() - self._margin
        painter.fillRect(QRectF(bar_l, 4, bar_r - bar_l, h - 20), QColor("#22272e"))
        for a, b in self.gt_ranges:
            x, w = self._span(a, b)
            painter.fillRect(QRectF(x, 4, w, 10), GT_COLOUR)
        for a, b in self.verdict_ranges:
            x, w = self._span(a, b)
            painter.fillRect(QRectF(x, 16, w, 10), VERDICT_COLOUR)
        for f in self.box_frames:
            x = self.x_for_frame(f)
            painter.fillRect(QRectF(x - 1.5, 16, 3, 10), QColor("#ffffff"))
        top, bottom = 30.0, h - 18.0
        if self.scores is not None and len(self.scores) == self.frame_count:
            threshold_y = bottom - 0.5 * (bottom - top)
            pen = QPen(QColor("#8b949e"), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(bar_l, threshold_y), QPointF(bar_r, threshold_y))
            step = max(1, self.frame_count // max(1, int(bar_r - bar_l)))
            points = [
                QPointF(self.x_for_frame(i), bottom - float(np.clip(self.scores[i], 0, 1)) * (bottom - top))
                for i in range(0, self.frame_count, step)
            ]
            painter.setPen(QPen(SCORE_COLOUR, 1.5))
            painter.drawPolyline(QPolygonF(points))
        if self.selection is not None:
            x, w = self._span(*self.selection)
            painter.fillRect(QRectF(x, 2, w, h - 16), SELECTION_COLOUR)
        painter.setPen(QColor("#8b949e"))
        font = QFont()
        font.setPointSizeF(7.5)
        painter.setFont(font)
        ticks = 8
        for k in range(ticks + 1):
            frame = round(k * (self.frame_count - 1) / ticks)
            x = self.x_for_frame(frame)
            painter.drawLine(QPointF(x, h - 16), QPointF(x, h - 13))
            painter.drawText(QRectF(x - 30, h - 13, 60, 12), Qt.AlignmentFlag.AlignCenter, str(frame))
        x = self.x_for_frame(self.cursor)
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, h - 14))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self.frame_count <= 0 or event.button() != Qt.MouseButton.LeftButton:
            return
        frame = self.frame_at(event.position().x())
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = frame
            self.selection = (frame, frame)
            self.update()
        else:
            self._anchor = None
            self.seek_requested.emit(frame)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self.frame_count <= 0:
            return
        frame = self.frame_at(event.position().x())
        tip = f"frame {frame}  ({frame / self.fps:.2f} s)"
        if self.scores is not None and len(self.scores) == self.frame_count:
            tip += f"   score {float(self.scores[frame]):.2f}"
        self.setToolTip(tip)
        if not event.buttons() & Qt.MouseButton.LeftButton:
            return
        if self._anchor is not None:
            self.selection = (min(self._anchor, frame), max(self._anchor, frame))
            self.update()
        else:
            self.seek_requested.emit(frame)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._anchor is not None and event.button() == Qt.MouseButton.LeftButton:
            frame = self.frame_at(event.position().x())
            self.selection = (min(self._anchor, frame), max(self._anchor, frame))
            self._anchor = None
            self.update()
            self.selection_changed.emit()


class VideoViewer(CaseViewer):
    """Shows a video case frame by frame with its timeline, and the verdict on top."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("videoViewer")
        self.scene = QGraphicsScene(self)
        self.view = ZoomableView(self.scene)
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.heat_item = QGraphicsPixmapItem()
        self.heat_item.setZValue(1)
        self.heat_item.setOpacity(0.6)
        self.scene.addItem(self.image_item)
        self.scene.addItem(self.heat_item)
        self.region_items: list[QGraphicsRectItem] = []
        self.mask_items: list[MaskOverlay] = []  # mask overlays of the boxes on the shown frame
        self.timeline = Timeline()
        self.readout = QLabel("")
        self.readout.setObjectName("videoReadout")
        self.message = ""  # the last decoding problem, shown in the readout

        self._loaded: LoadedCase | None = None
        self._source: Any = None
        self._cursor = 0
        self._shown = -1
        self._verdict: Verdict | None = None
        self._heat: np.ndarray | None = None
        self._heat_frame: int | None = None
        self._boxes: list[tuple[int, int, Region]] = []
        self._decoder = FrameDecoder()
        self._decoder.frame_ready.connect(self._frame_ready)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._tick)
        self._play_origin: tuple[float, int] = (0.0, 0)

        self._build_toolbar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.timeline)
        legend = QLabel(
            f"<span style='color:{GT_COLOUR.name()}'>■</span> ground truth &nbsp; "
            f"<span style='color:{VERDICT_COLOUR.name()}'>■</span> verdict &nbsp; "
            f"<span style='color:{SCORE_COLOUR.name()}'>—</span> frame score &nbsp; "
            "Shift+drag: choose the frames the model sees"
        )
        legend.setObjectName("videoLegend")
        layout.addWidget(legend)
        layout.addWidget(self.readout)
        self.timeline.seek_requested.connect(self.seek)
        self.timeline.selection_changed.connect(self._selection_made)

    # ------------------------------------------------------------------ construction

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Video", self)
        self.action_play = self._action("Play", [Qt.Key.Key_Space], self.toggle_play, "Play / pause (Space)")
        self.action_back = self._action(
            "◀", [Qt.Key.Key_Left, Qt.Key.Key_Comma], lambda: self.step(-1), "Previous frame (Left or ,)"
        )
        self.action_forward = self._action(
            "▶", [Qt.Key.Key_Right, Qt.Key.Key_Period], lambda: self.step(1), "Next frame (Right or .)"
        )
        self.action_start = self._action("|◀", [Qt.Key.Key_Home], lambda: self.seek(0), "First frame (Home)")
        self.action_end = self._action(
            "▶|", [Qt.Key.Key_End], lambda: self.seek(self.frame_count() - 1), "Last frame (End)"
        )
        self.toolbar.addSeparator()
        self.action_fit = self._action("Fit", [Qt.Key.Key_F], self.view.fit, "Fit the frame to the window (F)")
        self.action_heat = self._action(
            "Heat map",
            [Qt.Key.Key_H],
            self._update_overlays,
            "Show the detector's heat map on its frame (H)",
            checkable=True,
        )
        self.action_regions = self._action(
            "Regions",
            [Qt.Key.Key_R],
            self._update_overlays,
            "Show the verdict's boxes on their frames (R)",
            checkable=True,
        )
        self.toolbar.addSeparator()
        self.toolbar.addWidget(QLabel(" Model sees: "))
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("videoSamplingMode")
        self.mode_combo.addItem("Whole video", "whole")
        self.mode_combo.addItem("Selected range", "range")
        self.mode_combo.addItem("Around cursor", "around")
        self.mode_combo.setToolTip(
            "Which frames are sampled for the model (Shift+drag on the timeline selects a range)"
        )
        self.mode_combo.currentIndexChanged.connect(self._options_changed)
        self.toolbar.addWidget(self.mode_combo)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(2, 25)
        self.samples_spin.setValue(DEFAULT_SAMPLES)
        self.samples_spin.setSuffix(" frames")
        self.samples_spin.setToolTip("How many frames the model sees")
        self.samples_spin.valueChanged.connect(self._options_changed)
        self.toolbar.addWidget(self.samples_spin)
        self.layout_combo = QComboBox()
        self.layout_combo.addItem("as a grid", "grid")
        self.layout_combo.addItem("as a sequence", "sequence")
        self.layout_combo.setToolTip("One labelled grid image, or one image per frame")
        self.layout_combo.currentIndexChanged.connect(self._options_changed)
        self.toolbar.addWidget(self.layout_combo)
        self.action_clear = self._action("Clear range", [], self.clear_selection, "Forget the selected frame range")

    # ------------------------------------------------------------------ CaseViewer

    def render_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        mode = self.mode_combo.currentData()
        if mode == "range" and self.timeline.selection is not None:
            options["frames"] = list(self.timeline.selection)
        elif mode == "around" and self._source is not None:
            options["around"] = self._cursor
        if self.samples_spin.value() != DEFAULT_SAMPLES:
            options["samples"] = self.samples_spin.value()
        if self.layout_combo.currentData() != "grid":
            options["layout"] = self.layout_combo.currentData()
        return options

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> QImage | None:
        """The first frame, decoded and converted off the GUI thread."""
        try:
            return array_to_qimage(loaded.data.frame(0))
        except Exception:  # noqa: BLE001 - shown as a message by show_case
            return None

    def show_case(self, loaded: LoadedCase, display: QImage | None = None) -> None:
        if loaded is self._loaded:
            if self.render_options():  # the window composed with defaults: have it use the viewer's view
                self.render_options_changed.emit()
            return
        self.pause()
        self._loaded, self._source = loaded, loaded.data
        self._cursor, self._shown, self.message = 0, -1, ""
        self.timeline.set_video(self._source.frame_count, self._source.fps)
        self.timeline.gt_ranges = [(int(a), int(b)) for a, b in loaded.metadata.get("ground_truth_frames") or []]
        for widget in (self.mode_combo, self.samples_spin, self.layout_combo):
            widget.blockSignals(True)
        self.mode_combo.setCurrentIndex(0)
        self.samples_spin.setValue(DEFAULT_SAMPLES)
        self.layout_combo.setCurrentIndex(0)
        for widget in (self.mode_combo, self.samples_spin, self.layout_combo):
            widget.blockSignals(False)
        w, h = self._source.size
        self.scene.setSceneRect(QRectF(0, 0, w, h))
        self.show_verdict(None, None)
        if display is not None:
            self._display(0, display)
        else:
            self.seek(0)
        self.view.fit()

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        previous = self._verdict
        self._verdict = verdict
        regions = list(verdict.regions) if verdict is not None else []
        details = verdict.details if verdict is not None and isinstance(verdict.details, dict) else {}
        self.timeline.verdict_ranges = _ranges(regions)
        self._boxes = _boxes(regions)
        self.timeline.box_frames = sorted({a for a, _, _ in self._boxes})
        scores = details.get("frame_scores")
        self.timeline.scores = np.asarray(scores, dtype=np.float64) if isinstance(scores, list) and scores else None
        self._heat = heatmap
        frame = details.get("heatmap_frame")
        self._heat_frame = int(frame) if isinstance(frame, int) else None
        self.timeline.update()
        self._update_overlays()
        new = verdict is not None and (previous is None or previous.id != verdict.id)
        if new and self._source is not None:
            target = self._first_marked_frame()
            if target is not None and self.mode_combo.currentData() != "around":
                self.seek(target)

    def _first_marked_frame(self) -> int | None:
        if self._boxes:
            return min(a for a, _, _ in self._boxes)
        if self.timeline.verdict_ranges:
            return min(a for a, _ in self.timeline.verdict_ranges)
        return None

    def clear(self) -> None:
        self.pause()
        self._loaded = self._source = None
        self._verdict, self._heat, self._boxes = None, None, []
        self.image_item.setPixmap(QPixmap())
        self.heat_item.setPixmap(QPixmap())
        self.timeline.set_video(0, 25.0)
        self._clear_boxes()
        self.readout.setText("")

    # ------------------------------------------------------------------ navigation

    def frame_count(self) -> int:
        return int(self._source.frame_count) if self._source is not None else 0

    def current_frame(self) -> int:
        return self._cursor

    def shown_frame(self) -> int:
        """The frame whose pixels are on screen (lags `current_frame` while decoding)."""
        return self._shown

    def seek(self, index: int) -> None:
        if self._source is None:
            return
        index = max(0, min(self.frame_count() - 1, int(index)))
        changed = index != self._cursor
        self._cursor = index
        self.timeline.cursor = index
        self.timeline.update()
        self._update_readout()
        cached = self._source.cached(index)
        if cached is not None:
            self._display(index, array_to_qimage(cached))
        else:
            self._decoder.request(self._source, index)
        if changed and self.mode_combo.currentData() == "around" and not self.is_playing():
            self.render_options_changed.emit()

    def step(self, delta: int) -> None:
        self.pause()
        self.seek(self._cursor + delta)

    def is_playing(self) -> bool:
        return self._play_timer.isActive()

    def toggle_play(self) -> None:
        if self.is_playing():
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if self._source is None:
            return
        if self._cursor >= self.frame_count() - 1:
            self.seek(0)
        self._play_origin = (time.perf_counter(), self._cursor)
        self._play_timer.start(max(10, int(1000 / max(1.0, self._source.fps))))
        self.action_play.setText("Pause")

    def pause(self) -> None:
        was_playing = self._play_timer.isActive()
        self._play_timer.stop()
        self.action_play.setText("Play")
        if was_playing and self.mode_combo.currentData() == "around":
            self.render_options_changed.emit()

    def _tick(self) -> None:
        """Real-time playback: the frame due now; skipped while the decoder is still busy."""
        started, first = self._play_origin
        due = first + int((time.perf_counter() - started) * self._source.fps)
        if due >= self.frame_count():
            self.seek(self.frame_count() - 1)
            self.pause()
            return
        if due != self._cursor and not self._decoder.busy:
            self.seek(due)

    def _frame_ready(self, index: int) -> None:
        if self._source is None:
            return
        taken = self._decoder.take(self._source, index)
        if taken is None:
            return
        image, error = taken
        if error:
            self.message = error
            self._update_readout()
            return
        if index == self._cursor or self.is_playing():
            self._display(index, image)
        if index != self._cursor and not self.is_playing():
            self._decoder.request(self._source, self._cursor)

    def _display(self, index: int, image: QImage | None) -> None:
        if image is None:
            return
        self._shown = index
        self.message = ""
        self.image_item.setPixmap(QPixmap.fromImage(image))
        self._update_overlays()
        self._update_readout()

    # ------------------------------------------------------------------ selection and options

    def clear_selection(self) -> None:
        self.timeline.selection = None
        self.timeline.update()
        if self.mode_combo.currentData() == "range":
            self.mode_combo.setCurrentIndex(0)  # emits through _options_changed
        self._update_readout()

    def _selection_made(self) -> None:
        if self.mode_combo.currentData() != "range":
            self.mode_combo.setCurrentIndex(1)  # emits through _options_changed
        else:
            self.render_options_changed.emit()
        self._update_readout()

    def _options_changed(self, *_: object) -> None:
        self.render_options_changed.emit()

    # ------------------------------------------------------------------ overlays

    def _clear_boxes(self) -> None:
        for item in self.region_items:
            self.scene.removeItem(item)
        self.region_items = []
        self.mask_items = []

    def _update_overlays(self, *_: object) -> None:
        self._clear_boxes()
        frame = self._shown
        for number, (a, b, region) in enumerate(self._boxes, start=1):
            if a <= frame <= b:
                self._add_box(number, region)
        for item in self.region_items:
            item.setVisible(self.action_regions.isChecked())
        show_heat = self._heat is not None and self._heat_frame == frame and self._source is not None
        if show_heat:
            w, h = self._source.size
            pixmap = QPixmap.fromImage(array_to_qimage(heat_to_rgba(self._heat)))
            if pixmap.width() != w or pixmap.height() != h:
                pixmap = pixmap.scaled(
                    w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            self.heat_item.setPixmap(pixmap)
        else:
            self.heat_item.setPixmap(QPixmap())
        self.heat_item.setVisible(self.action_heat.isChecked())

    def _add_box(self, number: int, region: Region) -> None:
        rect = region_box(number, region, colour=VERDICT_COLOUR)
        overlay = mask_overlay(region, rect, VERDICT_COLOUR)
        if overlay is not None:
            self.mask_items.append(overlay)
        self.scene.addItem(rect)
        self.region_items.append(rect)

    def _update_readout(self) -> None:
        if self._source is None:
            self.readout.setText("")
            return
        fps = self._source.fps
        last = self.frame_count() - 1
        assumed = " (assumed)" if self._loaded is not None and self._loaded.metadata.get("fps_assumed") else ""
        parts = [
            f"frame {self._cursor} / {last}",
            f"{self._cursor / fps:.2f} s / {last / fps:.2f} s",
            f"{fps:g} fps{assumed}",
        ]
        if any(a <= self._cursor <= b for a, b in self.timeline.gt_ranges):
            parts.append("ground truth: anomalous")
        if any(a <= self._cursor <= b for a, b in self.timeline.verdict_ranges):
            parts.append("verdict: anomalous here")
        scores = self.timeline.scores
        if scores is not None and len(scores) == self.frame_count():
            parts.append(f"score {float(scores[self._cursor]):.2f}")
        if self.timeline.selection is not None:
            a, b = self.timeline.selection
            parts.append(f"selected {a}-{b}")
        if self.message:
            parts.append(f"⚠ {self.message}")
        self.readout.setText("   ·   ".join(parts))
