"""Projects and profiles from the main window: open, create, close, recent projects; the profile
chosen in the toolbar and the profile dialog.

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.store import ProjectStore, StoreError
from views.window_base import WindowBase


class ProjectActions(WindowBase):
    """The open project and its profiles."""

    def open_project(self, path: str | Path) -> bool:
        path = Path(path)
        try:
            store = ProjectStore(path)
        except StoreError as exc:
            self.notify(exc.user_message)
            return False
        self.close_project()
        self.store = store
        self.service = InspectionService(store, self.registry)
        self.service.mark_settings = self.localization_settings()
        self.project_label.setText(str(path))
        self.setWindowTitle(f"{path.stem} — Anomalens Workstation")
        self.app_settings.add_recent(str(path))
        self._save_settings()
        self._reload_profiles()
        self.refresh_cases()
        self._update_enabled()
        self.banner_bar.hide()
        if store.unfinished_batches():
            self.notify(
                "A batch inspection of this project was interrupted; its pending cases continue with "
                "Inspect ▸ Inspect selected cases (Ctrl+Shift+Return).",
                "info",
            )
        return True

    def close_project(self) -> None:
        for job in self.runner.active_jobs():
            job.cancel()
        self._inspect_job = None
        self._current = None
        if self.store is not None:
            self.store.close()
        if self.service is not None:
            self.service.close()
        self.store = None
        self.service = None
        self.case_browser.set_cases([])
        self.prompt_panel.set_prompt(None)
        self.verdict_panel.show_verdict(None)
        for _, viewer in self._viewers.values():
            viewer.clear()

    def new_project_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "New project", str(Path.home() / "inspection.anomalens"), "Anomalens projects (*.anomalens)"
        )
        if path:
            if not path.endswith(".anomalens"):
                path += ".anomalens"
            self.open_project(path)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open project", str(Path.home()), "Anomalens projects (*.anomalens);;All files (*)"
        )
        if path:
            self.open_project(path)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for recent in self.app_settings.recent_projects:
            action = self.recent_menu.addAction(recent)
            action.triggered.connect(lambda _=False, p=recent: self.open_project(p))
        if not self.app_settings.recent_projects:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _reload_profiles(self, select_id: int | None = None) -> None:
        current = select_id if select_id is not None else self.current_profile_id()
        self.profile_combo.blockSignals(True)
        self.profile_combo.clear()
        profiles = self.store.profiles() if self.store else []
        for profile in profiles:
            self.profile_combo.addItem(profile.name, profile.id)
        if current is not None:
            index = self.profile_combo.findData(current)
            if index >= 0:
                self.profile_combo.setCurrentIndex(index)
        self.profile_combo.blockSignals(False)

    def current_profile_id(self) -> int | None:
        return self.profile_combo.currentData()

    def current_profile(self) -> Profile | None:
        profile_id = self.current_profile_id()
        if self.store is None or profile_id is None:
            return None
        return self.store.profile(profile_id)

    def _profile_changed(self, *_: object) -> None:
        self._recompose()

    def new_profile_dialog(self) -> None:
        """A new profile starts with the shown case's modality and that modality's preset."""
        modality = self._current.case.modality if self._current is not None else "image"
        plugin = self.registry.modalities.get(modality) or self.registry.modalities.get("image")
        if plugin is None:
            self._open_profile_dialog(None)
            return
        self._open_profile_dialog(Profile(name="", modality=plugin.name, domain_preset=plugin.default_preset))

    def edit_profile_dialog(self) -> None:
        self._open_profile_dialog(self.current_profile())

    def _open_profile_dialog(self, profile: Profile | None) -> None:
        from views.profile_dialog import ProfileDialog

        if self.service is None:
            return
        dialog = ProfileDialog(self.service, profile, self)
        self.profile_dialog = dialog  # tests drive the dialog through this handle
        dialog.finished.connect(lambda _: self._profile_dialog_closed(dialog))
        dialog.open()

    def _profile_dialog_closed(self, dialog) -> None:
        self.activateWindow()  # keyboard shortcuts work again at once (also without a window manager)
        if dialog.profile.id is not None:
            self._reload_profiles(dialog.profile.id)
            self._recompose()
