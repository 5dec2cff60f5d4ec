"""A/B comparison: two prompt variants or two models on the same cases, then the evaluation."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from inspector.prompt import PromptSwitches
from inspector.session import Variant

__all__ = ["ABDialog", "Variant"]


class ABDialog(QDialog):
    """Variant A starts as the current settings, B as A without reference images (zero-shot)."""

    def __init__(self, model: str, switches: PromptSwitches, case_count: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("A/B comparison")
        grid = QGridLayout()
        grid.addWidget(QLabel(""), 0, 0)
        grid.addWidget(QLabel("<b>A</b>"), 0, 1)
        grid.addWidget(QLabel("<b>B</b>"), 0, 2)
        self.models = [QLineEdit(model), QLineEdit(model)]
        self.shots = [QSpinBox(), QSpinBox()]
        self.parts: list[dict[str, QCheckBox]] = [{}, {}]
        rows = [("Model", self.models), ("Reference shots", self.shots)]
        for row, (label, widgets) in enumerate(rows, start=1):
            grid.addWidget(QLabel(label), row, 0)
            for column, widget in enumerate(widgets, start=1):
                grid.addWidget(widget, row, column)
        for index, spin in enumerate(self.shots):
            spin.setRange(0, 8)
            spin.setValue(switches.max_references if index == 0 else 0)
        for row, (name, title) in enumerate(
            [
                ("task", "Task information"),
                ("class_info", "Class information"),
                ("standards", "Normal standards"),
                ("set_of_mark", "Set-of-Mark (numbered marks)"),
            ],
            start=3,
        ):
            grid.addWidget(QLabel(title), row, 0)
            for column in (0, 1):
                box = QCheckBox()
                box.setChecked(bool(getattr(switches, name)))
                self.parts[column][name] = box
                grid.addWidget(box, row, column + 1)
        note = QLabel(
            f"Both variants inspect the same {case_count} case(s) in the background; answers already "
            "in the response cache are not asked again. The evaluation then compares them on the "
            "cases with a decision or an imported label."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run A and B")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def variants(self) -> list[Variant]:
        out = []
        for index in (0, 1):
            shots = self.shots[index].value()
            switches = PromptSwitches(
                task=self.parts[index]["task"].isChecked(),
                class_info=self.parts[index]["class_info"].isChecked(),
                standards=self.parts[index]["standards"].isChecked(),
                references=shots > 0,
                max_references=shots,
                set_of_mark=self.parts[index]["set_of_mark"].isChecked(),
            )
            out.append(Variant(self.models[index].text().strip(), switches))
        return out
