"""Verdict panel: anomalous or not, score, explanation, raw answer, and the operator's decision."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from inspector.model import Decision, ParseStatus, Region, ScoreSource, Verdict, VerdictSource
from views.chat_panel import ChatPanel

SCORE_SOURCE_TEXT = {
    ScoreSource.LOGPROB: "from the verdict token's log-probabilities",
    ScoreSource.STATED_CONFIDENCE: "from the confidence the model stated",
    ScoreSource.EXTRACTION_LOGPROB: "from the log-probabilities of the verdict the model restated (second turn)",
    ScoreSource.EXTRACTION_CONFIDENCE: "from the confidence the model stated in its second turn",
    ScoreSource.OFFLINE_CALIBRATED: "offline detector, calibrated score (0.5 = its decision threshold)",
    ScoreSource.HYBRID: "VLM judging the offline detector's marks, combined with its score (hybrid rule)",
    ScoreSource.NONE: "no score available",
}


def where(region: Region) -> str:
    """Where a region is, in the modality's own terms (slice, frames, samples, points, pixels)."""
    detail = region.detail or {}
    parts = []
    if "slice" in detail:
        parts.append(f"on slice {detail['slice']}")
    if "frames" in detail:
        first, last = detail["frames"]
        parts.append(f"in frame {first}" if first == last else f"in frames {first}–{last}")
    if "times" in detail:
        parts.append(f"from {detail['times'][0]} to {detail['times'][1]}")
    elif "samples" in detail:
        parts.append(f"in samples {detail['samples'][0]}–{detail['samples'][1]}")
    if "points" in detail:
        parts.append(f"covering {detail['points']} points" + (f" ({detail['view']})" if "view" in detail else ""))
    if region.x1 > region.x0 and region.y1 > region.y0:
        parts.append(f"at ({region.x0:.0f}, {region.y0:.0f})–({region.x1:.0f}, {region.y1:.0f})")
    return " ".join(parts) or "(no location)"


def marks_summary(details: dict) -> str:
    """One line on a Set-of-Mark answer: marks drawn, chosen, called normal, numbers not drawn."""
    marks = details.get("marks")
    if not isinstance(marks, list) or not marks:
        return ""
    answer = details.get("mark_answer") or {}
    chosen = [f"#{m['mark']}" for m in marks if m.get("selected")]
    normal = [f"#{m['mark']}" for m in marks if m.get("rejected")]
    parts = [f"Set-of-Mark: {len(marks)} marks drawn ({answer.get('proposals') or 'proposals'})"]
    if chosen:
        parts.append("the model chose " + ", ".join(chosen))
    elif answer.get("said_none"):
        parts.append("the model said no mark is anomalous")
    elif not answer.get("found"):
        parts.append("the answer named no mark")
    if answer.get("unplaced"):
        parts.append("chosen but not placeable on the case: " + ", ".join(f"#{n}" for n in answer["unplaced"]))
    if normal:
        parts.append("called normal " + ", ".join(normal))
    if answer.get("unknown"):
        parts.append("numbers not on the image, ignored: " + ", ".join(str(n) for n in answer["unknown"]))
    return "; ".join(parts) + "."


class VerdictPanel(QWidget):
    decision_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.badge = QLabel("No verdict")
        self.badge.setObjectName("verdictBadge")
        self.badge.setProperty("state", "none")
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.source = QLabel("")
        self.source.setObjectName("verdictSource")
        self.source.setWordWrap(True)
        self.score_bar = QProgressBar()
        self.score_bar.setObjectName("scoreBar")
        self.score_bar.setRange(0, 1000)
        self.score_bar.setTextVisible(True)
        self.score_bar.setFormat("score —")
        self.score_source = QLabel("")
        self.score_source.setObjectName("muted")
        self.profile_note = QLabel("")
        self.profile_note.setObjectName("profileNote")
        self.profile_note.setWordWrap(True)
        self.profile_note.setStyleSheet("color: #d29922")
        self.profile_note.hide()
        self.tabs = QTabWidget()
        self.explanation = QTextBrowser()
        self.explanation.setObjectName("explanation")
        self.raw = QPlainTextEdit()
        self.raw.setReadOnly(True)
        self.raw.setObjectName("rawAnswer")
        self.chat = ChatPanel()
        self.tabs.addTab(self.explanation, "Explanation")
        self.tabs.addTab(self.raw, "Raw answer")
        self.tabs.addTab(self.chat, "Follow-up")

        self.confirm_normal = QPushButton("Normal  (N)")
        self.confirm_normal.setObjectName("decideNormal")
        self.confirm_normal.setToolTip("Record the operator's decision: normal (key N)")
        self.confirm_anomalous = QPushButton("Anomalous  (A)")
        self.confirm_anomalous.setObjectName("decideAnomalous")
        self.confirm_anomalous.setToolTip("Record the operator's decision: anomalous (key A)")
        self.confirm_normal.clicked.connect(lambda: self.decision_requested.emit("normal"))
        self.confirm_anomalous.clicked.connect(lambda: self.decision_requested.emit("anomalous"))
        self.decision = QLabel("Operator decision: none yet")
        self.decision.setObjectName("decisionLabel")

        buttons = QHBoxLayout()
        buttons.addWidget(self.confirm_normal)
        buttons.addWidget(self.confirm_anomalous)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.badge)
        layout.addWidget(self.source)
        layout.addWidget(self.score_bar)
        layout.addWidget(self.score_source)
        layout.addWidget(self.profile_note)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.decision)
        layout.addLayout(buttons)
        self.set_decision_enabled(False)

    def _set_badge(self, text: str, state: str) -> None:
        self.badge.setText(text)
        self.badge.setProperty("state", state)
        self.badge.style().unpolish(self.badge)
        self.badge.style().polish(self.badge)

    def set_profile_note(self, text: str) -> None:
        """Says when the verdict predates changes to its profile (references, expected defects)."""
        self.profile_note.setText(text)
        self.profile_note.setVisible(bool(text))

    def set_decision_enabled(self, enabled: bool) -> None:
        self.confirm_normal.setEnabled(enabled)
        self.confirm_anomalous.setEnabled(enabled)

    def show_verdict(self, verdict: Verdict | None) -> None:
        if verdict is None:
            self._set_badge("Not inspected", "none")
            self.source.setText("Press Inspect (Ctrl+Return) to ask the model or the offline detector.")
            self.score_bar.setValue(0)
            self.score_bar.setFormat("score —")
            self.score_source.setText("")
            self.explanation.setPlainText("")
            self.raw.setPlainText("")
            return
        if verdict.parse_status == ParseStatus.UNPARSED:
            refused = bool((verdict.details or {}).get("refused"))
            self._set_badge("MODEL DECLINED" if refused else "UNREADABLE ANSWER", "unparsed")
        elif verdict.anomalous:
            self._set_badge("ANOMALOUS", "anomalous")
        else:
            self._set_badge("NORMAL", "normal")
        if verdict.source == VerdictSource.OFFLINE:
            self.source.setText(f"Offline detector — no VLM was asked ({verdict.model}; {verdict.created_at or ''})")
        else:
            restated = (verdict.details or {}).get("extraction", {}).get("used")
            self.source.setText(
                f"VLM: {verdict.model} ({verdict.created_at or ''})"
                + (" — verdict from the extraction turn" if restated else "")
            )
        if verdict.score is None:
            self.score_bar.setValue(0)
            self.score_bar.setFormat("score —")
        else:
            self.score_bar.setValue(round(verdict.score * 1000))
            self.score_bar.setFormat(f"P(anomalous) {verdict.score:.2f}")
        self.score_source.setText(SCORE_SOURCE_TEXT[ScoreSource(verdict.score_source)])
        text = verdict.explanation or ""
        if verdict.regions:
            lines = [
                f"{i}. {r.label or 'region'} {where(r)}" + (f": {r.reason}" if r.reason else "")
                for i, r in enumerate(verdict.regions, 1)
            ]
            text += "\n\nRegions:\n" + "\n".join(lines)
        marks_line = marks_summary(verdict.details or {})
        if marks_line:
            text += "\n\n" + marks_line
        damaged = (verdict.details or {}).get("input_warnings") or []
        if damaged:  # first, where it cannot be missed: the verdict judged a picture that is not whole
            text = "Damaged input: " + "; ".join(map(str, damaged)) + "\n\n" + text
        self.explanation.setPlainText(text)
        self.raw.setPlainText(verdict.raw_answer)

    def show_busy(self, message: str) -> None:
        self._set_badge("Inspecting…", "busy")
        self.source.setText(message)

    def show_error(self, message: str) -> None:
        self._set_badge("Inspection failed", "error")
        self.source.setText(message)

    def show_decision(self, decision: Decision | None) -> None:
        if decision is None:
            self.decision.setText("Operator decision: none yet")
        else:
            self.decision.setText(f"Operator decision: <b>{decision.label}</b> ({decision.created_at})")
