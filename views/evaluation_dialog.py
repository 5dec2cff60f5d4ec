"""Evaluation dashboard: how good the verdicts are on this project, per group, with ROC curves and exports."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from inspector.evaluation import GroupMetrics, to_csv, to_html, to_json

COLUMNS = ("n", "unparsed", "accuracy", "precision", "recall", "f1", "auroc", "ap")
CURVE_COLOURS = ["#1f6feb", "#f85149", "#3fb950", "#d29922", "#a371f7", "#db61a2"]


class EvaluationDialog(QDialog):
    """Shows results computed by `inspector.evaluation.evaluate` (the window computes them off-thread)."""

    def __init__(self, results: dict[str, list[GroupMetrics]], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Evaluation")
        self.resize(980, 560)
        self.results = results
        self.grouping = QComboBox()
        self.grouping.addItems(list(results))
        self.grouping.currentTextChanged.connect(self._show)
        self.table = QTableWidget(0, len(COLUMNS) + 1)
        self.table.setHorizontalHeaderLabels(["group", *COLUMNS])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "false-positive rate")
        self.plot.setLabel("left", "true-positive rate")
        self.plot.setXRange(0, 1)
        self.plot.setYRange(0, 1)
        self.plot.addLegend()
        self.plot.setMinimumWidth(320)
        note = QLabel(
            "Ground truth: the operator's decisions, else the labels cases were imported with. "
            "Unparsed answers are counted, not scored."
        )
        note.setWordWrap(True)
        note.setObjectName("muted")
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Group by"))
        buttons.addWidget(self.grouping)
        buttons.addStretch(1)
        for text, kind in (("Export CSV…", "csv"), ("Export JSON…", "json"), ("HTML report…", "html")):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, k=kind: self.export(k))
            buttons.addWidget(button)
        body = QHBoxLayout()
        body.addWidget(self.table, 3)
        body.addWidget(self.plot, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(body, 1)
        layout.addWidget(note)
        self._show(self.grouping.currentText())

    def _show(self, grouping: str) -> None:
        groups = self.results.get(grouping, [])
        self.table.setRowCount(len(groups))
        self.plot.clear()
        self.plot.plot([0, 1], [0, 1], pen=pg.mkPen("#cccccc", style=pg.QtCore.Qt.PenStyle.DashLine))
        for row, g in enumerate(groups):
            label = "; ".join(f"{k}={v}" for k, v in g.key.items()) or "all"
            self.table.setItem(row, 0, QTableWidgetItem(label))
            for col, name in enumerate(COLUMNS, start=1):
                value = getattr(g, name)
                text = "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
                self.table.setItem(row, col, QTableWidgetItem(text))
            if g.roc:
                xs, ys = zip(*g.roc, strict=True)
                colour = CURVE_COLOURS[row % len(CURVE_COLOURS)]
                self.plot.plot(
                    list(xs), list(ys), pen=pg.mkPen(colour, width=2), name=f"{label[:40]} (AUROC {g.auroc:.2f})"
                )

    def export(self, kind: str, path: str | None = None) -> Path | None:
        """Write the results as CSV, JSON or a self-contained HTML report (asks for a file name)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export evaluation", f"evaluation.{kind}", f"{kind.upper()} (*.{kind})"
            )
            if not path:
                return None
        text = {"csv": to_csv, "json": to_json, "html": to_html}[kind](self.results)
        target = Path(path)
        target.write_text(text, encoding="utf-8")
        return target
