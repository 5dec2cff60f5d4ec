"""Profile editor: class name, normal standards, expected defects, preset, normal references.

References are stored inside the project file the moment they are added (drag and drop or the
file dialog), so a profile travels with the project.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from inspector.imaging import decode_image
from inspector.inspection import InspectionError, InspectionService
from inspector.model import Profile
from inspector.prompt import available_presets
from views.case_browser import local_paths_from_mime
from views.prompt_panel import thumbnail_array


class ReferenceList(QListWidget):
    """Thumbnails of the profile's normal references; accepts dropped image files."""

    def __init__(self, on_drop, parent=None):
        super().__init__(parent)
        self._on_drop = on_drop
        self.setObjectName("referenceList")
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(96, 96))
        self.setMovement(QListWidget.Movement.Static)
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setAcceptDrops(True)
        self.setMinimumHeight(140)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if local_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if local_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = local_paths_from_mime(event.mimeData())
        if paths:
            self._on_drop(paths)
            event.acceptProposedAction()


class _DialogSignals(QObject):
    references_added = Signal(list)  # problems; emitted from the worker thread, delivered queued


class ProfileDialog(QDialog):
    def __init__(self, service: InspectionService, profile: Profile | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Profile" if profile is not None and profile.id is not None else "New profile")
        self.resize(640, 620)
        self.service = service
        self.profile = profile or Profile(name="")
        self.name = QLineEdit(self.profile.name)
        self.name.setPlaceholderText("e.g. Brake disc, line 3")
        self.class_name = QLineEdit(self.profile.class_name)
        self.class_name.setPlaceholderText("e.g. brake disc")
        self.preset = QComboBox()
        self.preset.addItems(available_presets())
        index = self.preset.findText(self.profile.domain_preset)
        if index >= 0:
            self.preset.setCurrentIndex(index)
        self.modality = QComboBox()
        self.modality.setToolTip("The kind of case this profile inspects; a new profile takes its preset from it")
        for plugin in service.registry.modalities.values():
            self.modality.addItem(plugin.title, plugin.name)
        index = self.modality.findData(self.profile.modality)
        if index >= 0:
            self.modality.setCurrentIndex(index)
        self.modality.currentIndexChanged.connect(self._modality_changed)
        self.standards = QPlainTextEdit(self.profile.normal_standards)
        self.standards.setPlaceholderText("What a normal item looks like, written by the domain expert.")
        self.defects = QPlainTextEdit(self.profile.expected_defects)
        self.defects.setPlaceholderText("Known defect types, one per line (scratch, crack, missing screw…)")
        self.references = ReferenceList(self._add_reference_paths)
        add = QPushButton("Add references…")
        add.clicked.connect(self._browse_references)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self._remove_selected)
        self.add_button, self.remove_button = add, remove
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.adding = False
        self._signals = _DialogSignals(self)
        self._signals.references_added.connect(self._references_added)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Class name", self.class_name)
        form.addRow("Modality", self.modality)
        form.addRow("Domain preset", self.preset)
        form.addRow("Normal standards", self.standards)
        form.addRow("Expected defects", self.defects)
        ref_buttons = QHBoxLayout()
        ref_buttons.addWidget(QLabel("Normal references (drop images, or normal cases of any modality)"), 1)
        ref_buttons.addWidget(add)
        ref_buttons.addWidget(remove)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons = buttons
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(ref_buttons)
        layout.addWidget(self.references)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self._reload_references()

    def _modality_changed(self) -> None:
        """A new profile follows the modality's preset (medical for DICOM, ...); an existing one keeps its own."""
        if self.profile.id is not None:
            return
        plugin = self.service.registry.modalities.get(self.modality.currentData())
        if plugin is not None:
            index = self.preset.findText(plugin.default_preset)
            if index >= 0:
                self.preset.setCurrentIndex(index)

    def _collect(self) -> Profile:
        self.profile.name = self.name.text().strip() or self.class_name.text().strip() or "Unnamed profile"
        self.profile.class_name = self.class_name.text().strip()
        self.profile.domain_preset = self.preset.currentText()
        self.profile.modality = self.modality.currentData() or self.profile.modality
        self.profile.normal_standards = self.standards.toPlainText().strip()
        self.profile.expected_defects = self.defects.toPlainText().strip()
        return self.profile

    def _ensure_saved(self) -> int:
        """References need a profile row to hang on: save the profile before the first one."""
        if self.profile.id is None:
            self.service.store.save_profile(self._collect())
        assert self.profile.id is not None
        return self.profile.id

    def _reload_references(self) -> None:
        self.references.clear()
        if self.profile.id is None:
            return
        for ref in self.service.store.references(self.profile.id):
            rgb, _ = decode_image(self.service.store.get_blob(ref.blob_sha256), ref.name)
            item = QListWidgetItem(QIcon(thumbnail_array(rgb, 96)), ref.name)
            item.setToolTip(f"{ref.name} ({ref.width}×{ref.height})")
            item.setData(Qt.ItemDataRole.UserRole, ref.id)
            self.references.addItem(item)

    def _add_reference_paths(self, paths: list[str]) -> None:
        """Add references in a background thread: a video, a series or a point cloud takes seconds
        to turn into reference images, and the window must not freeze meanwhile."""
        if self.adding:
            self.status.setText("Still adding the previous references…")
            return
        profile_id = self._ensure_saved()
        service = self.service
        self.adding = True
        self._set_busy(f"Adding references from {len(paths)} item(s)…")

        def work() -> None:
            problems = []
            for path in service.registry.expand_paths(paths):
                try:
                    service.add_reference_file(profile_id, Path(path))
                except InspectionError as exc:
                    problems.append(str(exc))
                except Exception as exc:  # noqa: BLE001 - reported to the operator, the dialog goes on
                    problems.append(f"{Path(path).name}: {type(exc).__name__}: {exc}")
            with contextlib.suppress(RuntimeError):  # the dialog may be gone by now
                self._signals.references_added.emit(problems)

        threading.Thread(target=work, name="add-references", daemon=True).start()

    def _references_added(self, problems: list[str]) -> None:
        self.adding = False
        self._set_busy("")
        self._reload_references()
        if problems:
            QMessageBox.warning(self, "Some references were not added", "\n".join(problems))

    def _set_busy(self, message: str) -> None:
        self.status.setText(message)
        for widget in (self.add_button, self.remove_button, self.buttons.button(QDialogButtonBox.StandardButton.Save)):
            widget.setEnabled(not message)

    def _browse_references(self) -> None:
        filters = [p.file_filter for p in self.service.registry.modalities.values() if p.file_filter]
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Add normal references (images, or normal cases of any modality)",
            "",
            ";;".join([*filters, "All files (*)"]),
        )
        if paths:
            self._add_reference_paths(paths)

    def _remove_selected(self) -> None:
        for item in self.references.selectedItems():
            ref_id = item.data(Qt.ItemDataRole.UserRole)
            if ref_id is not None:
                self.service.store.remove_reference(ref_id)
        self._reload_references()

    def reference_count(self) -> int:
        return self.references.count()

    def accept(self) -> None:
        self.service.store.save_profile(self._collect())
        super().accept()
