"""Case list: every case with its status and score; accepts dropped files."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.inspection import input_warnings
from inspector.model import Case, CaseStatus

STATUS_TEXT = {
    CaseStatus.NOT_INSPECTED: "not inspected",
    CaseStatus.NORMAL: "normal",
    CaseStatus.ANOMALOUS: "anomalous",
    CaseStatus.UNDECIDED: "unreadable answer",
    CaseStatus.ERROR: "error",
}
KIND_TEXT = {"image": "image", "dicom": "DICOM", "point_cloud": "3D scan", "time_series": "series", "video": "video"}
STATUS_COLOUR = {
    CaseStatus.NOT_INSPECTED: "#8a8f98",
    CaseStatus.NORMAL: "#3fb950",
    CaseStatus.ANOMALOUS: "#f85149",
    CaseStatus.UNDECIDED: "#d29922",
    CaseStatus.ERROR: "#d29922",
}


def local_paths_from_mime(mime) -> list[str]:
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


class CaseBrowser(QWidget):
    case_selected = Signal(int)
    files_dropped = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("caseTable")
        self.table.setHorizontalHeaderLabels(["Case", "Status", "Score", "Kind"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumWidth(260)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.hint = QLabel(
            "Drop files or folders here (images, DICOM series, point clouds, sensor series,\n"
            "videos or frame folders), or use File ▸ Add cases…"
        )
        self.hint.setObjectName("hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary = QLabel("")
        self.summary.setObjectName("caseSummary")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addWidget(self.summary)
        self._rows: dict[int, int] = {}
        self._statuses: dict[int, CaseStatus] = {}

    def set_cases(self, cases: list[Case], decided: set[int] | None = None) -> None:
        current = self.current_case_id()
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        self._rows = {}
        for case in cases:
            self._append(case, decided or set())
        self.table.blockSignals(False)
        self.hint.setVisible(not cases)
        self._update_summary(cases)
        if current is not None and current in self._rows:
            self.select_case(current)

    def _append(self, case: Case, decided: set[int]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self._rows[case.id] = row
        self._fill(row, case, case.id in decided)

    def _fill(self, row: int, case: Case, decided: bool) -> None:
        name = QTableWidgetItem(case.name)
        name.setData(Qt.ItemDataRole.UserRole, case.id)
        warnings = input_warnings(case)
        name.setToolTip(case.error or "\n".join([case.source_path, *(f"Damaged input: {w}" for w in warnings)]))
        status = CaseStatus(case.status)
        text = STATUS_TEXT[status] + (" ✓" if decided else "") + (" ⚠" if warnings else "")
        status_item = QTableWidgetItem(text)
        status_item.setForeground(QColor(STATUS_COLOUR[status]))
        status_item.setToolTip(
            case.error
            or "; ".join(
                [
                    ("confirmed by the operator" if decided else "machine verdict"),
                    *(f"damaged input: {w}" for w in warnings),
                ]
            )
        )
        score = QTableWidgetItem("" if case.score is None else f"{case.score:.2f}")
        score.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.table.setItem(row, 0, name)
        self.table.setItem(row, 1, status_item)
        self.table.setItem(row, 2, score)
        kind = QTableWidgetItem(KIND_TEXT.get(case.modality, case.modality))
        kind.setForeground(QColor("#8a8f98"))
        self.table.setItem(row, 3, kind)

    def update_case(self, case: Case, decided: bool) -> None:
        row = self._rows.get(case.id)
        if row is None:
            return
        self.table.blockSignals(True)
        self._fill(row, case, decided)
        self.table.blockSignals(False)
        self._statuses[case.id] = CaseStatus(case.status)
        self._show_summary()

    def _update_summary(self, cases: list[Case]) -> None:
        self._statuses = {case.id: CaseStatus(case.status) for case in cases}
        self._show_summary()

    def _show_summary(self) -> None:
        counts: dict[CaseStatus, int] = {}
        for status in self._statuses.values():
            counts[status] = counts.get(status, 0) + 1
        parts = [f"{counts[s]} {STATUS_TEXT[s]}" for s in STATUS_TEXT if s in counts]
        self.summary.setText(f"{len(self._statuses)} cases" + (": " + ", ".join(parts) if parts else ""))

    def row_count(self) -> int:
        return self.table.rowCount()

    def status_text(self, case_id: int) -> str:
        return self.table.item(self._rows[case_id], 1).text()

    def current_case_id(self) -> int | None:
        """The case under the cursor (the one shown), even when several rows are selected."""
        row = self.table.currentRow()
        if row < 0 or not self.table.selectionModel().isRowSelected(row):
            return None
        return self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)

    def selected_case_ids(self) -> list[int]:
        rows = sorted({item.row() for item in self.table.selectedItems()})
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in rows]

    def select_case(self, case_id: int) -> None:
        row = self._rows.get(case_id)
        if row is None:
            return
        if self.current_case_id() == case_id:
            self.case_selected.emit(case_id)  # already selected: show it again (e.g. after a reload)
        else:
            self._select_row(row)

    def _select_row(self, row: int) -> None:
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().setCurrentIndex(self.table.model().index(row, 0), flags)

    def select_next(self) -> None:
        row = self.table.currentRow() + 1
        if row < self.table.rowCount():
            self._select_row(row)

    def _selection_changed(self) -> None:
        case_id = self.current_case_id()
        if case_id is not None:
            self.case_selected.emit(case_id)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if local_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if local_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = local_paths_from_mime(event.mimeData())
        if paths:
            self.files_dropped.emit(paths)
            event.acceptProposedAction()
