"""Prompt panel: the paper's four prompt parts as switches, the final text, the attached images."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.prompt import ComposedPrompt, PromptSwitches


class PromptPanel(QWidget):
    """Shows the composed prompt; the operator may switch parts off or edit the final text.

    Editing the text marks the prompt as edited: the edited text is what is sent and stored, and
    "Reset" returns to the composed one.
    """

    switches_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task = QCheckBox("Task information")
        self.class_info = QCheckBox("Class information")
        self.standards = QCheckBox("Normal standards")
        self.references = QCheckBox("Normal references")
        for box, tip in [
            (self.task, "What to do and how to answer"),
            (self.class_info, "The product or exam class from the profile"),
            (self.standards, "The expert's normal standards and expected defects from the profile"),
            (self.references, "Attach normal reference images (few-shot); off = zero-shot"),
        ]:
            box.setChecked(True)
            box.setToolTip(tip)
            box.toggled.connect(self._switch_toggled)
        self.shots = QSpinBox()
        self.shots.setRange(1, 8)
        self.shots.setValue(1)
        self.shots.setPrefix("shots: ")
        self.shots.setToolTip("How many normal references to attach")
        self.shots.valueChanged.connect(self._switch_toggled)
        self.set_of_mark = QCheckBox("Set-of-Mark")
        self.set_of_mark.setToolTip(
            "Draw numbered marks on candidate regions and ask which marks are anomalous "
            "(Settings ▸ Localization chooses where the marks come from)"
        )
        self.set_of_mark.toggled.connect(self._switch_toggled)
        self.preset_label = QLabel("")
        self.preset_label.setObjectName("muted")

        grid = QGridLayout()
        grid.addWidget(self.task, 0, 0)
        grid.addWidget(self.class_info, 0, 1)
        grid.addWidget(self.standards, 1, 0)
        refs = QHBoxLayout()
        refs.addWidget(self.references)
        refs.addWidget(self.shots)
        grid.addLayout(refs, 1, 1)
        grid.addWidget(self.set_of_mark, 2, 0)

        self.text = QPlainTextEdit()
        self.text.setObjectName("promptText")
        self.text.setPlaceholderText("Select a case and a profile to compose the prompt.")
        self.text.textChanged.connect(self._text_changed)
        self.edited_label = QLabel("")
        self.edited_label.setObjectName("warning")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Discard your edits and use the composed prompt")
        self.reset_button.clicked.connect(self._reset)
        self.reset_button.setEnabled(False)

        self.thumbnails = QListWidget()
        self.thumbnails.setObjectName("promptImages")
        self.thumbnails.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbnails.setIconSize(QSize(72, 72))
        self.thumbnails.setFlow(QListWidget.Flow.LeftToRight)
        self.thumbnails.setWrapping(False)
        self.thumbnails.setFixedHeight(112)
        self.thumbnails.setMovement(QListWidget.Movement.Static)

        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Prompt</b>"))
        header.addWidget(self.preset_label, 1)
        header.addWidget(self.edited_label)
        header.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(grid)
        layout.addLayout(header)
        layout.addWidget(self.text, 1)
        layout.addWidget(QLabel("Images sent with the prompt"))
        layout.addWidget(self.thumbnails)

        self._composed_text = ""
        self._setting_text = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.switches_changed.emit)

    def switches(self) -> PromptSwitches:
        return PromptSwitches(
            task=self.task.isChecked(),
            class_info=self.class_info.isChecked(),
            standards=self.standards.isChecked(),
            references=self.references.isChecked(),
            max_references=self.shots.value() if self.references.isChecked() else 0,
            set_of_mark=self.set_of_mark.isChecked(),
        )

    def text_override(self) -> str | None:
        """The operator's edited text, or None when the composed text is unchanged."""
        text = self.text.toPlainText()
        return text if text != self._composed_text else None

    def set_prompt(self, prompt: ComposedPrompt | None) -> None:
        self.thumbnails.clear()
        if prompt is None:
            self._set_text("")
            self.preset_label.setText("")
            return
        self.preset_label.setText(f"preset {prompt.preset} v{prompt.preset_version}")
        if not prompt.edited:
            self._set_text(prompt.text)
        for image in prompt.images:
            qimage = QImage.fromData(image.png)
            icon = QIcon(
                QPixmap.fromImage(qimage).scaled(
                    72, 72, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )
            item = QListWidgetItem(icon, f"{image.role}\n{image.label}")
            item.setToolTip(f"{image.role}: {image.label} ({qimage.width()}×{qimage.height()})")
            self.thumbnails.addItem(item)

    def image_count(self) -> int:
        return self.thumbnails.count()

    def _set_text(self, text: str) -> None:
        self._setting_text = True
        self._composed_text = text
        self.text.setPlainText(text)
        self._setting_text = False
        self._text_changed()

    def _text_changed(self) -> None:
        edited = self.text_override() is not None
        self.edited_label.setText("edited" if edited else "")
        self.reset_button.setEnabled(edited)

    def _reset(self) -> None:
        self._set_text(self._composed_text)

    def _switch_toggled(self, *_: object) -> None:
        self.shots.setEnabled(self.references.isChecked())
        self._debounce.start()


def thumbnail_array(rgb: np.ndarray, side: int = 72) -> QPixmap:
    from views.viewer_api import array_to_qimage

    return QPixmap.fromImage(array_to_qimage(rgb)).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
