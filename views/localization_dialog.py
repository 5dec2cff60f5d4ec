"""Localization settings: where Set-of-Mark marks come from, how many, and the SAM checkpoint.

Stored in the application settings (``extra["localization"]``): a checkpoint path belongs to the
machine, not to the project. A profile can still override any of these in its own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.localization.set_of_mark import DEFAULT_SETTINGS

METHODS = [
    ("segments", "Segments (graph-based segmentation, no checkpoint)"),
    ("hybrid", "Hybrid: offline heat map proposes, segments outline (needs references)"),
    ("heatmap", "Offline heat map blobs (needs references)"),
    ("sam", "Segment Anything (needs a checkpoint file)"),
]
SAM_MODELS = ("vit_b", "vit_l", "vit_h")
SAM_DEFAULTS: dict[str, Any] = {
    "model_type": "vit_b",
    "checkpoint": "",
    "points_per_side": 32,
    "pred_iou_thresh": 0.88,
    "stability_score_thresh": 0.95,
}
SAM_HELP = (
    "Segment Anything needs a checkpoint file, which the app never downloads. Get the official one for "
    "the model size from the segment-anything project (github.com/facebookresearch/segment-anything, "
    "“Model Checkpoints”): vit_b → sam_vit_b_01ec64.pth (375 MB), vit_l → sam_vit_l_0b3195.pth "
    "(1.2 GB), vit_h → sam_vit_h_4b8939.pth (2.4 GB), copy it to this machine and choose it here. "
    "On a CPU, vit_b takes several seconds per image."
)


class LocalizationDialog(QDialog):
    """Edits the application's Set-of-Mark settings; `settings()` returns the dict to store."""

    def __init__(self, current: dict[str, Any] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Localization (Set-of-Mark)")
        self.resize(620, 520)
        values = {**DEFAULT_SETTINGS, **(current or {})}
        sam = {**SAM_DEFAULTS, **(values.get("sam") or {})}

        self.method = QComboBox()
        for key, title in METHODS:
            self.method.addItem(title, key)
        index = self.method.findData(values.get("method", "segments"))
        self.method.setCurrentIndex(max(0, index))
        self.max_marks = _spin(1, 40, int(values.get("max_marks", 12)))
        self.min_area = _fraction(float(values.get("min_area_frac", 0.0005)), 0.0, 0.2, 4)
        self.max_area = _fraction(float(values.get("max_area_frac", 0.6)), 0.01, 1.0, 2)
        self.merge_iou = _fraction(float(values.get("merge_iou", 0.7)), 0.1, 1.0, 2)
        self.vlm_weight = _fraction(float(values.get("vlm_weight", 0.7)), 0.0, 1.0, 2)
        self.vlm_weight.setToolTip("Hybrid score = w × VLM + (1 − w) × offline detector")
        self.marks_on_references = QCheckBox("Draw marks on the normal references too (for comparison)")
        self.marks_on_references.setChecked(bool(values.get("marks_on_references", False)))

        general = QFormLayout()
        general.addRow("Proposals", self.method)
        general.addRow("Most marks", self.max_marks)
        general.addRow("Smallest region (image fraction)", self.min_area)
        general.addRow("Largest region (image fraction)", self.max_area)
        general.addRow("Merge duplicates above IoU", self.merge_iou)
        general.addRow("VLM weight in hybrid scores", self.vlm_weight)
        general.addRow("", self.marks_on_references)

        self.sam_model = QComboBox()
        self.sam_model.addItems(SAM_MODELS)
        self.sam_model.setCurrentText(str(sam["model_type"]))
        self.checkpoint = QLineEdit(str(sam.get("checkpoint") or ""))
        self.checkpoint.setPlaceholderText("path to sam_vit_b_01ec64.pth (or vit_l / vit_h)")
        self.checkpoint.textChanged.connect(self._check_checkpoint)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint, 1)
        row.addWidget(browse)
        self.checkpoint_state = QLabel("")
        self.checkpoint_state.setWordWrap(True)
        self.points_per_side = _spin(4, 64, int(sam["points_per_side"]))
        self.pred_iou = _fraction(float(sam["pred_iou_thresh"]), 0.0, 1.0, 2)
        self.stability = _fraction(float(sam["stability_score_thresh"]), 0.0, 1.0, 2)
        sam_form = QFormLayout()
        sam_form.addRow("Model", self.sam_model)
        sam_form.addRow("Checkpoint", row)
        sam_form.addRow("", self.checkpoint_state)
        sam_form.addRow("Points per side", self.points_per_side)
        sam_form.addRow("Predicted IoU threshold", self.pred_iou)
        sam_form.addRow("Stability threshold", self.stability)
        help_label = QLabel(SAM_HELP)
        help_label.setWordWrap(True)
        help_label.setObjectName("muted")
        sam_box = QGroupBox("Segment Anything")
        sam_layout = QVBoxLayout(sam_box)
        sam_layout.addWidget(help_label)
        sam_layout.addLayout(sam_form)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "With “Set-of-Mark” on in the prompt panel, numbered marks are drawn on candidate "
            "regions and the model answers with mark numbers; the chosen marks are highlighted "
            "in the viewer."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(general)
        layout.addWidget(sam_box)
        layout.addWidget(buttons)
        self._check_checkpoint()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM checkpoint", self.checkpoint.text(), "PyTorch checkpoints (*.pth *.pt);;All files (*)"
        )
        if path:
            self.checkpoint.setText(path)

    def _check_checkpoint(self) -> None:
        text = self.checkpoint.text().strip()
        if not text:
            self.checkpoint_state.setText("No checkpoint chosen: the SAM method is unavailable.")
        elif not Path(text).is_file():
            self.checkpoint_state.setText("No file at this path.")
        else:
            size = Path(text).stat().st_size / 1e6
            self.checkpoint_state.setText(f"File found ({size:.0f} MB); it is loaded and checked on first use.")

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method.currentData(),
            "max_marks": self.max_marks.value(),
            "min_area_frac": self.min_area.value(),
            "max_area_frac": self.max_area.value(),
            "merge_iou": self.merge_iou.value(),
            "vlm_weight": self.vlm_weight.value(),
            "marks_on_references": self.marks_on_references.isChecked(),
            "sam": {
                "model_type": self.sam_model.currentText(),
                "checkpoint": self.checkpoint.text().strip(),
                "points_per_side": self.points_per_side.value(),
                "pred_iou_thresh": self.pred_iou.value(),
                "stability_score_thresh": self.stability.value(),
            },
        }


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _fraction(value: float, low: float, high: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(10**-decimals if decimals > 2 else 0.05)
    box.setValue(value)
    return box
