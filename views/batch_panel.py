"""Progress of a batch inspection in the status bar: counts, tokens, cost, ETA, and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from inspector.vlm.batch import BatchProgress


def describe(progress: BatchProgress) -> str:
    """One line for the operator: what is done, what it cost, when it ends."""
    parts = [f"{progress.done + progress.failed}/{progress.total} cases"]
    if progress.cached:
        parts.append(f"{progress.cached} from the cache")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.tokens_in or progress.tokens_out:
        parts.append(f"{progress.tokens_in:,} + {progress.tokens_out:,} tokens")
    parts.append("cost unknown (no price for the model)" if progress.cost is None else f"${progress.cost:.4f}")
    if progress.status == "running" and progress.eta_s is not None:
        minutes, seconds = divmod(int(progress.eta_s + 0.5), 60)
        parts.append(f"about {minutes} min {seconds:02d} s left" if minutes else f"about {seconds} s left")
    elif progress.status != "running":
        parts.append(progress.status + (f": {progress.message}" if progress.message else ""))
    return " · ".join(parts)


class BatchPanel(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.label = QLabel("")
        self.label.setObjectName("batchStatus")
        self.cancel = QPushButton("Cancel batch")
        self.cancel.clicked.connect(self.cancel_requested.emit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        self.hide()

    def show_progress(self, progress: BatchProgress) -> None:
        self.bar.setMaximum(max(1, progress.total))
        self.bar.setValue(progress.done + progress.failed)
        self.label.setText(describe(progress))
        self.cancel.setEnabled(progress.status == "running")
        self.show()
