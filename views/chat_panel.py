"""Follow-up questions on the shown verdict: the conversation and a line to ask the next question."""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from inspector.chat import ChatTurn


class ChatPanel(QWidget):
    """Shows the stored turns; asking is done by the window (in the background) on `question_asked`."""

    question_asked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("chatTranscript")
        self.question = QLineEdit()
        self.question.setObjectName("chatQuestion")
        self.question.setPlaceholderText("Ask the model about this verdict (same images)…")
        self.question.returnPressed.connect(self._ask)
        self.ask_button = QPushButton("Ask")
        self.ask_button.clicked.connect(self._ask)
        self.status = QLabel("")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.question, 1)
        row.addWidget(self.ask_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.status)
        layout.addLayout(row)
        self.set_available(False, "Inspect the case with the VLM to ask follow-up questions.")

    def _ask(self) -> None:
        text = self.question.text().strip()
        if text and self.ask_button.isEnabled():
            self.question_asked.emit(text)

    def set_available(self, available: bool, reason: str = "") -> None:
        self.question.setEnabled(available)
        self.ask_button.setEnabled(available)
        self.status.setText("" if available else reason)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.question.setEnabled(not busy)
        self.ask_button.setEnabled(not busy)
        self.status.setText(message)

    def question_sent(self) -> None:
        self.question.clear()

    def set_turns(self, turns: list[ChatTurn]) -> None:
        parts = []
        for turn in turns:
            parts.append(f"<p><b>You:</b> {html.escape(turn.question)}</p>")
            if turn.error:
                parts.append(f"<p style='color:#d29922'><b>Not answered:</b> {html.escape(turn.error)}</p>")
            else:
                answer = html.escape(turn.answer).replace("\n", "<br>")
                parts.append(f"<p><b>{html.escape(turn.model or 'Model')}:</b> {answer}</p>")
        self.transcript.setHtml("".join(parts) or "<p style='color:#8a8f98'>No follow-up questions yet.</p>")
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
