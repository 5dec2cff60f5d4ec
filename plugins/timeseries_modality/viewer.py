"""Time-series viewer dock: pyqtgraph plots with linked x, a crosshair readout, range selection,
known anomaly windows, the verdict's ranges and the detector's per-sample scores.

Millions of samples stay fluid because each curve draws only what is in view (clip to view) and at
most about one min/max pair per pixel column (automatic "peak" downsampling), so a one-sample spike
never disappears when zoomed out. Arrays are made contiguous float64 in `prepare_display` (a worker
thread); the GUI thread only hands them to pyqtgraph.

The viewer reads the plugin's series object by attribute (time, values, columns, axis, labels,
format_time) and imports nothing from the plugin, so a broken plugin cannot break the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QToolBar, QVBoxLayout

from inspector.model import LoadedCase, Region, Verdict
from views.viewer_api import (
    CaseViewer,
)

MAX_PANELS = 6  # more columns than this are overlaid in one panel
PALETTE = ("#1f4e9c", "#c2571a", "#2a8c4a", "#8c2a8c", "#8c7a2a", "#2a7f8c", "#555555", "#b02a4a")
LABEL_BRUSH = QColor(255, 170, 0, 55)
VERDICT_BRUSH = QColor(220, 40, 40, 70)
SELECTION_BRUSH = QColor(60, 120, 220, 50)


class ReadableDateAxis(pg.DateAxisItem):
    """pyqtgraph's date axis, but day ticks say "03 Mar" instead of a bare "03"."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph override
        strings = super().tickStrings(values, scale, spacing)
        spec = next((s for s in self.zoomLevel.tickSpecs if s.spacing == spacing), None) if self.zoomLevel else None
        if spec is not None and spec.format == "%d":
            import datetime as dt

            return [dt.datetime.fromtimestamp(v, dt.UTC).strftime("%d %b") for v in values]
        return strings


@dataclass
class SeriesDisplay:
    """What the GUI thread needs, prepared in a worker: contiguous arrays and label spans."""

    x: np.ndarray
    columns: list[tuple[str, np.ndarray]]
    axis: str
    panels: list[list[int]]  # column indices per panel
    labels: list[tuple[float, float, str]] = field(default_factory=list)


def _x_span(x: np.ndarray, i0: int, i1: int) -> tuple[float, float]:
    """Axis extent of samples i0..i1, widened by half a step so one sample is still visible."""
    n = x.size
    i0, i1 = max(0, min(i0, n - 1)), max(0, min(i1, n - 1))
    a, b = float(x[i0]), float(x[i1])
    if n > 1:
        left = float(x[i0] - x[i0 - 1]) if i0 > 0 else float(x[1] - x[0])
        right = float(x[i1 + 1] - x[i1]) if i1 + 1 < n else float(x[-1] - x[-2])
        a, b = a - 0.5 * left, b + 0.5 * right
    else:
        a, b = a - 0.5, b + 0.5
    return a, b


class TimeSeriesViewer(CaseViewer):
    """One series: a plot per column (or overlaid), linked x, crosshair, selection, overlays."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("timeSeriesViewer")
        pg.setConfigOptions(antialias=False)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.readout = QLabel("")
        self.readout.setObjectName("seriesReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.toolbar = QToolBar("Series", self)
        self.action_reset = self._action("Fit", "F", self.reset_view, "Show the whole series (F)")
        self.toolbar.addSeparator()
        self.action_select = self._action(
            "Select range",
            "S",
            self._selection_toggled,
            "Select a time range: only it is sent to the model (S)",
            checkable=True,
            checked=False,
        )
        self.action_labels = self._action(
            "Labels", "L", self._update_visibility, "Show the known anomaly windows of the file (L)", checkable=True
        )
        self.action_regions = self._action(
            "Regions", "R", self._update_visibility, "Show the ranges of the verdict (R)", checkable=True
        )
        self.action_scores = self._action(
            "Scores", "D", self._update_visibility, "Show the detector's per-sample scores (D)", checkable=True
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.readout)

        self.plots: list[pg.PlotItem] = []
        self.curves: list[pg.PlotDataItem] = []
        self.cursor_lines: list[pg.InfiniteLine] = []
        self.selection_items: list[pg.LinearRegionItem] = []
        self.label_items: list[pg.GraphicsObject] = []
        self.verdict_items: list[pg.GraphicsObject] = []
        self.verdict_spans: list[tuple[float, float]] = []
        self.score_plot: pg.PlotItem | None = None
        self.score_curve: pg.PlotDataItem | None = None
        self._series: Any = None
        self._display: SeriesDisplay | None = None
        self._syncing = False
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)

    # ------------------------------------------------------------------ CaseViewer

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> SeriesDisplay:
        series = loaded.data
        x = np.ascontiguousarray(series.time, dtype=np.float64)
        columns = [
            (str(name), np.ascontiguousarray(series.values[:, i], dtype=np.float64))
            for i, name in enumerate(series.columns)
        ]
        count = len(columns)
        panels = [[i] for i in range(count)] if count <= MAX_PANELS else [list(range(count))]
        labels = []
        for k, window in enumerate(getattr(series, "labels", []) or [], start=1):
            a, b = _x_span(x, int(window.start), int(window.end))
            text = (
                f"Known anomaly window {k}: {series.format_time(x[window.start])} to "
                f"{series.format_time(x[window.end])} ({window.source})"
            )
            labels.append((a, b, text))
        return SeriesDisplay(x=x, columns=columns, axis=series.axis, panels=panels, labels=labels)

    def show_case(self, loaded: LoadedCase, display: SeriesDisplay | None = None) -> None:
        if loaded.data is self._series:
            return  # already shown: keep the operator's zoom and selection
        self.clear()
        self._series = loaded.data
        self._display = display if display is not None else self.prepare_display(loaded)
        self._build_plots(self._display)
        self._draw_labels()
        self.reset_view()

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        for item in self.verdict_items:
            self._remove_from_plots(item)
        self.verdict_items = []
        self.verdict_spans = []
        self._remove_score_plot()
        if verdict is None or self._display is None:
            return
        x = self._display.x
        for index, region in enumerate(verdict.regions, start=1):
            samples = (region.detail or {}).get("samples")
            if not (isinstance(samples, (list, tuple)) and len(samples) == 2):
                continue
            a, b = _x_span(x, int(samples[0]), int(samples[1]))
            self.verdict_spans.append((a, b))
            name = _region_name(index, region)
            tip = f"{name}: {region.reason or region.label or 'anomalous range'}"
            times = region.detail.get("times")
            if times:
                tip += f"\n{times[0]} to {times[1]}"
            tip += f"\nscore {region.score:.2f}"
            for plot_number, plot in enumerate(self.plots):
                item = pg.LinearRegionItem(
                    (a, b), movable=False, brush=VERDICT_BRUSH, pen=pg.mkPen(QColor(200, 30, 30), width=1)
                )
                item.setZValue(5)
                item.setToolTip(tip)
                plot.addItem(item)
                self.verdict_items.append(item)
                if plot_number == 0:
                    text = pg.TextItem(name, color=QColor(170, 20, 20), anchor=(0, 0))
                    text.setPos(a, self._top_of(plot))
                    text.setZValue(6)
                    plot.addItem(text)
                    self.verdict_items.append(text)
        scores = (verdict.details or {}).get("sample_scores")
        if isinstance(scores, list) and scores:
            details = verdict.details
            self._add_score_plot(
                np.asarray(scores, dtype=np.float64),
                int(details.get("sample_scores_step", 1)),
                float(details.get("threshold", 0.5)),
            )
        self._update_visibility()

    def clear(self) -> None:
        self._set_selection_active(False, emit=False)
        self._remove_score_plot()
        self.graphics.clear()
        self.plots, self.curves, self.cursor_lines = [], [], []
        self.label_items, self.verdict_items, self.verdict_spans = [], [], []
        self._series = None
        self._display = None
        self.readout.setText("")

    def render_options(self) -> dict[str, Any]:
        """The selected range as samples, when a selection is active; {} means the whole series."""
        if not self.selection_items or self._display is None:
            return {}
        lo, hi = self.selection_items[0].getRegion()
        span = self._samples_between(lo, hi)
        return {"window": list(span)} if span is not None else {}

    # ------------------------------------------------------------------ building

    def _build_plots(self, display: SeriesDisplay) -> None:
        for row, members in enumerate(display.panels):
            axis = ReadableDateAxis(orientation="bottom", utcOffset=0) if display.axis == "datetime" else None
            plot = self.graphics.addPlot(row=row, col=0, axisItems={"bottom": axis} if axis else None)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            plot.setMenuEnabled(False)
            plot.getViewBox().setMouseMode(pg.ViewBox.PanMode)
            if len(members) > 1:
                plot.addLegend(offset=(6, 6))
            for index in members:
                name, values = display.columns[index]
                curve = plot.plot(
                    display.x, values, pen=pg.mkPen(PALETTE[index % len(PALETTE)], width=1), name=name, connect="finite"
                )
                self.curves.append(curve)
            plot.setLabel("left", display.columns[members[0]][0] if len(members) == 1 else "value")
            if self.plots:
                plot.setXLink(self.plots[0])
            cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((120, 120, 120), style=Qt.PenStyle.DashLine))
            cursor.setZValue(20)
            plot.addItem(cursor, ignoreBounds=True)
            self.cursor_lines.append(cursor)
            self.plots.append(plot)
        for plot in self.plots[:-1]:
            plot.getAxis("bottom").setStyle(showValues=False)
        if self.plots:
            title = {"datetime": "time", "index": "sample index"}.get(display.axis, "time")
            self.plots[-1].setLabel("bottom", title)

    def _draw_labels(self) -> None:
        assert self._display is not None
        for k, (a, b, text) in enumerate(self._display.labels, start=1):
            for plot_number, plot in enumerate(self.plots):
                item = pg.LinearRegionItem((a, b), movable=False, brush=LABEL_BRUSH, pen=pg.mkPen(None))
                item.setZValue(-5)
                item.setToolTip(text)
                plot.addItem(item)
                self.label_items.append(item)
                if plot_number == 0:
                    marker = pg.TextItem(f"label {k}", color=QColor(150, 90, 0), anchor=(0, 1))
                    marker.setPos(a, self._bottom_of(plot))
                    plot.addItem(marker)
                    self.label_items.append(marker)
        self._update_visibility()

    def _top_of(self, plot: pg.PlotItem) -> float:
        finite = [v[np.isfinite(v)] for _, v in (self._display.columns if self._display else [])]
        tops = [float(v.max()) for v in finite[:1] if v.size]
        return tops[0] if tops else 1.0

    def _bottom_of(self, plot: pg.PlotItem) -> float:
        finite = [v[np.isfinite(v)] for _, v in (self._display.columns if self._display else [])]
        lows = [float(v.min()) for v in finite[:1] if v.size]
        return lows[0] if lows else 0.0

    def _remove_from_plots(self, item) -> None:
        for plot in self.plots:
            if item in plot.items:
                plot.removeItem(item)

    def _add_score_plot(self, scores: np.ndarray, step: int, threshold: float) -> None:
        assert self._display is not None
        x = self._display.x
        positions = np.minimum(np.arange(scores.size) * max(1, step), x.size - 1)
        axis = ReadableDateAxis(orientation="bottom", utcOffset=0) if self._display.axis == "datetime" else None
        plot = self.graphics.addPlot(row=len(self.plots), col=0, axisItems={"bottom": axis} if axis else None)
        plot.setMaximumHeight(110)
        plot.setMenuEnabled(False)
        plot.setLabel("left", "score")
        plot.setYRange(0, 1, padding=0.05)
        plot.setMouseEnabled(y=False)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        if self.plots:
            plot.setXLink(self.plots[0])
        self.score_curve = plot.plot(x[positions], scores, pen=pg.mkPen("#c23a1a", width=1))
        plot.addItem(pg.InfiniteLine(pos=threshold, angle=0, pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DotLine)))
        self.score_plot = plot

    def _remove_score_plot(self) -> None:
        if self.score_plot is not None:
            self.graphics.removeItem(self.score_plot)
        self.score_plot = None
        self.score_curve = None

    # ------------------------------------------------------------------ interaction

    def reset_view(self) -> None:
        if self._display is None or not self.plots:
            return
        a, b = _x_span(self._display.x, 0, self._display.x.size - 1)
        self.plots[0].setXRange(a, b, padding=0)
        for plot in self.plots:
            plot.enableAutoRange(axis="y")

    def _update_visibility(self, *_: object) -> None:
        for item in self.label_items:
            item.setVisible(self.action_labels.isChecked())
        for item in self.verdict_items:
            item.setVisible(self.action_regions.isChecked())
        if self.score_plot is not None:
            self.score_plot.setVisible(self.action_scores.isChecked())

    def _samples_between(self, lo: float, hi: float) -> tuple[int, int] | None:
        assert self._display is not None
        x = self._display.x
        i0 = int(np.searchsorted(x, lo, side="left"))
        i1 = int(np.searchsorted(x, hi, side="right")) - 1
        i0, i1 = max(0, i0), min(x.size - 1, i1)
        if i0 > i1:
            nearest = int(np.clip(np.searchsorted(x, 0.5 * (lo + hi)), 0, x.size - 1))
            i0 = i1 = nearest
        return i0, i1

    def _selection_toggled(self, checked: bool) -> None:
        self._set_selection_active(checked, emit=True)

    def _set_selection_active(self, active: bool, emit: bool, span: tuple[float, float] | None = None) -> None:
        for item in self.selection_items:
            self._remove_from_plots(item)
        self.selection_items = []
        if active and self.plots and self._display is not None:
            if span is None:
                (lo, hi), _ = self.plots[0].viewRange()
                width = hi - lo
                span = (lo + 0.4 * width, lo + 0.6 * width)
            for plot in self.plots:
                item = pg.LinearRegionItem(span, brush=SELECTION_BRUSH, pen=pg.mkPen(QColor(40, 90, 200), width=2))
                item.setZValue(10)
                item.setToolTip("Selected range: only this part is sent to the model. Drag the edges to change it.")
                item.sigRegionChanged.connect(self._selection_moved)
                item.sigRegionChangeFinished.connect(self._selection_finished)
                plot.addItem(item)
                self.selection_items.append(item)
        if self.action_select.isChecked() != bool(self.selection_items):
            self.action_select.blockSignals(True)
            self.action_select.setChecked(bool(self.selection_items))
            self.action_select.blockSignals(False)
        if emit:
            self.render_options_changed.emit()

    def select_samples(self, i0: int, i1: int) -> None:
        """Select samples i0..i1 (what the operator does by dragging), and tell the window."""
        if self._display is None:
            return
        self._set_selection_active(True, emit=True, span=_x_span(self._display.x, min(i0, i1), max(i0, i1)))

    def _selection_moved(self, moved: pg.LinearRegionItem) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            region = moved.getRegion()
            for item in self.selection_items:
                if item is not moved:
                    item.setRegion(region)
        finally:
            self._syncing = False

    def _selection_finished(self, _item: pg.LinearRegionItem) -> None:
        if not self._syncing:
            self.render_options_changed.emit()

    def _mouse_moved(self, position: QPointF) -> None:
        if self._display is None or not self.plots:
            return
        plot = next((p for p in self.plots if p.sceneBoundingRect().contains(position)), None)
        if plot is None:
            return
        x_value = plot.getViewBox().mapSceneToView(position).x()
        self.move_cursor(x_value)

    def move_cursor(self, x_value: float) -> None:
        """Put the linked crosshair at an axis value and show the nearest sample in the readout."""
        if self._display is None:
            return
        for line in self.cursor_lines:
            line.setPos(x_value)
        x = self._display.x
        i = int(np.clip(np.searchsorted(x, x_value), 0, x.size - 1))
        if i > 0 and abs(x[i - 1] - x_value) < abs(x[i] - x_value):
            i -= 1
        when = self._series.format_time(x[i]) if self._series is not None else x[i]
        parts = [f"sample {i}", f"{when}"]
        for name, values in self._display.columns[:8]:
            value = values[i]
            parts.append(f"{name} = {value:.6g}" if np.isfinite(value) else f"{name} = (missing)")
        if self.score_curve is not None:
            xs, ys = self.score_curve.getOriginalDataset()
            if xs is not None and len(xs):
                k = int(np.clip(np.searchsorted(xs, x[i], side="right") - 1, 0, len(xs) - 1))
                parts.append(f"score {ys[k]:.2f}")
        self.readout.setText("   ".join(parts))


def _region_name(index: int, region: Region) -> str:
    """A range from a Set-of-Mark answer is called by its mark ("#3", as in the prompt), else by its index."""
    mark = (region.detail or {}).get("mark")
    return f"#{mark}" if isinstance(mark, int) and not isinstance(mark, bool) else str(index)
