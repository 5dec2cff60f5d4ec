"""The workstation's main window: wires the docks to the inspection service and background jobs.

It stays thin: reading, composing, asking, scoring and storing happen in `inspector/`, off the GUI
thread through `AsyncRunner`; the window shows results and the operator's decisions. Errors are
shown in a banner and the status bar (never a blocking dialog for something the operator did not
ask about), and the window keeps working.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMessageBox,
    QWidget,
)

from inspector.inspection import InspectionService
from inspector.model import Profile, Verdict, ViewerState
from inspector.plugins import PluginRegistry
from inspector.prompt import ComposedPrompt, PromptSwitches
from inspector.session import PreparedCase, PromptInputs, prepare_case
from inspector.settings import AppSettings
from inspector.store import ProjectStore, StoreError
from inspector.vlm.batch import BatchProgress
from views.batch_actions import BatchActions
from views.case_browser import CaseBrowser
from views.project_actions import ProjectActions
from views.prompt_panel import PromptPanel
from views.review_actions import ReviewActions
from views.settings_actions import SettingsActions
from views.verdict_panel import VerdictPanel
from views.viewer_api import CaseViewer
from views.viewer_docks import ViewerDocks
from views.window_chrome import WindowChrome
from views.workers import AsyncRunner, Job

log = logging.getLogger(__name__)


class MainWindow(WindowChrome, ProjectActions, ViewerDocks, BatchActions, ReviewActions, SettingsActions):
    """The window; its parts (menus and chrome, projects and profiles, viewer docks, batches, review,
    settings) are mixins in their own modules, each small enough to read on its own."""

    def __init__(self, settings: AppSettings, registry: PluginRegistry, settings_file: Path | None = None):
        super().__init__()
        self.setWindowTitle("Anomalens Workstation")
        self.resize(1440, 900)
        self.app_settings = settings
        self.settings_file = settings_file
        self.registry = registry
        self.store: ProjectStore | None = None
        self.service: InspectionService | None = None
        self.runner = AsyncRunner(self)
        self.runner.start_and_wait()
        self.runner.progress.connect(self._job_progress)
        self.runner.finished_job.connect(self._job_finished)
        self.runner.failed_job.connect(self._job_failed)
        self.runner.cancelled_job.connect(self._job_cancelled)
        self._callbacks: dict[int, tuple[Any, Any]] = {}
        self._inspect_job: Job | None = None
        self._prepare_job: Job | None = None
        self._current: PreparedCase | None = None
        self._viewers: dict[str, tuple[QDockWidget, CaseViewer]] = {}
        self._viewer_classes: dict[str, type[CaseViewer] | None] = {}
        self._batch_job: Job | None = None
        self._batch_lock = threading.Lock()
        self._batch_progress: BatchProgress | None = None  # written by the worker, read on the GUI thread
        # a viewer's slice or range changes in bursts (wheel, slider drag): recompose once it settles
        self._prompt_refresh_timer = QTimer(self)
        self._prompt_refresh_timer.setSingleShot(True)
        self._prompt_refresh_timer.setInterval(300)
        self._prompt_refresh_timer.timeout.connect(self._refresh_prompt)
        self.last_error = ""

        # All content lives in docks (viewers included, so they can be moved, tabbed, floated); the
        # central widget stays hidden so the docks share the whole window.
        central = QWidget()
        central.setObjectName("central")
        self.setCentralWidget(central)
        central.hide()
        self.setDockNestingEnabled(True)

        self.case_browser = CaseBrowser()
        self.prompt_panel = PromptPanel()
        self.verdict_panel = VerdictPanel()
        self.cases_dock = self._dock("Cases", self.case_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.verdict_dock = self._dock("Verdict", self.verdict_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.prompt_dock = self._dock("Prompt", self.prompt_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.splitDockWidget(self.verdict_dock, self.prompt_dock, Qt.Orientation.Vertical)

        self.case_browser.case_selected.connect(self.show_case)
        self.verdict_panel.chat.question_asked.connect(self.ask_followup)
        self.case_browser.files_dropped.connect(self.add_case_files)
        self.prompt_panel.switches_changed.connect(self._recompose)
        self.verdict_panel.decision_requested.connect(self.record_decision)

        self._build_actions()
        self._build_banner()
        self._build_status_bar()
        self._update_endpoint_label()
        self._update_enabled()
        self.setAcceptDrops(True)
        self._warm_up()
        if registry.errors:
            self.notify("Some plugins were skipped:\n" + "\n".join(e.message for e in registry.errors), "warning")

    # ------------------------------------------------------------------ construction

    def _warm_up(self) -> None:
        """Import the VLM client stack in the background now, not on the operator's first Inspect.

        Importing `openai` (pydantic models) is pure-Python work that holds the GIL for a while; done
        during the first request it would stall the window.
        """

        def warm(_job: Job) -> None:
            import inspector.vlm.answers
            import inspector.vlm.client  # noqa: F401

        self._run("Warming up", warm, lambda _result: None, lambda _message: None)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock{title.replace(' ', '')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------------ messages

    def _update_enabled(self) -> None:
        has_project = self.store is not None
        has_case = self._current is not None and self._current.loaded is not None
        busy = self._inspect_job is not None
        for action in (self.act_add, self.act_new_profile, self.act_edit_profile):
            action.setEnabled(has_project)
        self.act_inspect.setEnabled(has_case and not busy)
        self.act_batch.setEnabled(has_project and self._batch_job is None)
        self.act_ab.setEnabled(has_project and self._batch_job is None and self.app_settings.endpoint.configured)
        self.act_cancel.setEnabled(busy)
        decided_ok = self._current is not None and self._current.case.id is not None and has_project
        self.act_normal.setEnabled(decided_ok)
        self.act_anomalous.setEnabled(decided_ok)
        self.verdict_panel.set_decision_enabled(decided_ok)
        decision = self._current.decision if self._current is not None else None
        self.act_promote.setEnabled(has_case and decision is not None and decision.label == "normal")
        self.act_add_defect.setEnabled(has_case and decision is not None and decision.label == "anomalous")

    # ------------------------------------------------------------------ jobs

    def _run(self, title: str, function, on_done, on_error=None, blocking: bool = True) -> Job:
        job = self.runner.submit_blocking(title, function) if blocking else self.runner.submit(title, function)
        self._callbacks[job.id] = (on_done, on_error)
        return job

    def _job_progress(self, job_id: int, fraction: float, message: str) -> None:
        if self._batch_job is not None and job_id == self._batch_job.id:
            with self._batch_lock:
                latest = self._batch_progress
            if latest is not None:
                self.batch_panel.show_progress(latest)
            return
        if self._inspect_job is not None and job_id == self._inspect_job.id:
            self.progress.setValue(int(fraction * 1000))
            if message:
                self.verdict_panel.show_busy(message)

    def _job_finished(self, job_id: int) -> None:
        result = self.runner.take_outcome(job_id)
        on_done, _ = self._callbacks.pop(job_id, (None, None))
        if on_done is not None:
            on_done(result)

    def _job_failed(self, job_id: int) -> None:
        error = self.runner.take_outcome(job_id)
        _, on_error = self._callbacks.pop(job_id, (None, None))
        message = getattr(error, "user_message", None) or str(error) or type(error).__name__
        if on_error is not None:
            on_error(message)
        else:
            self.notify(message)

    def _job_cancelled(self, job_id: int) -> None:
        self._callbacks.pop(job_id, None)
        if self._batch_job is not None and job_id == self._batch_job.id:
            self._batch_job = None
            with self._batch_lock:
                latest = self._batch_progress
            if latest is not None:
                latest.status = "cancelled"
                self.batch_panel.show_progress(latest)
            self.notify(
                "Batch cancelled: the cases not yet inspected stay pending (Inspect ▸ Inspect selected "
                "cases continues them).",
                "info",
            )
            self.refresh_cases()
            self._update_enabled()
            self.batch_finished.emit(-1)
            return
        if self._inspect_job is not None and job_id == self._inspect_job.id:
            self._end_inspection()
            self.verdict_panel.show_verdict(self._current.verdict if self._current else None)
            self.notify("Inspection cancelled; nothing was stored for it.", "info")

    # ------------------------------------------------------------------ cases

    def refresh_cases(self) -> None:
        if self.store is None:
            return
        self.case_browser.set_cases(self.store.cases(), self.store.decided_case_ids())

    def add_cases_dialog(self) -> None:
        filters = ";;".join(
            [p.file_filter for p in self.registry.modalities.values() if p.file_filter] + ["All files (*)"]
        )
        paths, _ = QFileDialog.getOpenFileNames(self, "Add cases", "", filters)
        if paths:
            self.add_case_files(paths)

    def add_case_files(self, paths: list[str]) -> None:
        if self.service is None:
            self.notify("Open or create a project first (File ▸ New project).", "warning")
            return
        service = self.service
        profile_id = self.current_profile_id()
        registry = self.registry

        def work(job: Job):
            job.report(0.0, "Looking through the dropped files and folders…")
            files = registry.expand_paths(paths)  # a large tree takes a while: not on the GUI thread
            return service.import_files(
                files,
                profile_id,
                progress=lambda i, n: job.report(i / n, f"Adding cases {i}/{n}"),
                is_cancelled=job.is_cancelled,
            )

        def done(result) -> None:
            self.refresh_cases()
            parts = [f"{len(result.added)} added"]
            if result.duplicates:
                parts.append(f"{len(result.duplicates)} already in the project")
            if result.failed:
                parts.append(f"{len(result.failed)} could not be read")
                self.notify(
                    "Some files could not be read:\n" + "\n".join(c.error or c.name for c in result.failed), "warning"
                )
            self.statusBar().showMessage("Cases: " + ", ".join(parts), 8000)
            if result.added and self.case_browser.current_case_id() is None:
                self.case_browser.select_case(result.added[0].id)

        self._run("Adding cases", work, done)

    def show_case(self, case_id: int) -> None:
        """Load and prepare the case off the GUI thread, then show it."""
        if self.service is None:
            return
        if self._prepare_job is not None:
            self._prepare_job.cancel()
        self._follow_case_profile(case_id)
        service = self.service
        profile = self.current_profile()
        switches = self.prompt_panel.switches()
        viewer_classes = {name: self._viewer_class(name) for name in self.registry.modalities}
        # the same case shown again (a profile or switch change): keep what the viewer shows
        same_case = self._current is not None and self._current.case.id == case_id
        viewer_state = self._current_viewer_state() if same_case else None

        def work(job: Job) -> PreparedCase:
            prepared = prepare_case(service, case_id, profile, switches, viewer_state)
            viewer_class = viewer_classes.get(prepared.case.modality)
            if prepared.loaded is not None and viewer_class is not None:
                prepared.display = viewer_class.prepare_display(prepared.loaded)
            return prepared

        self._prepare_job = self._run("Opening case", work, self._show_prepared)

    def _follow_case_profile(self, case_id: int) -> None:
        """A case added under a profile is inspected with that profile: select it in the toolbar."""
        try:
            profile_id = self.store.case(case_id).profile_id if self.store is not None else None
        except (KeyError, StoreError):
            return
        if profile_id is not None and profile_id != self.current_profile_id():
            index = self.profile_combo.findData(profile_id)
            if index >= 0:
                self.profile_combo.blockSignals(True)
                self.profile_combo.setCurrentIndex(index)
                self.profile_combo.blockSignals(False)

    def _show_prepared(self, prepared: PreparedCase) -> None:
        self._prepare_job = None
        if self.case_browser.current_case_id() not in (None, prepared.case.id):
            return  # the operator has moved on
        self._current = prepared
        if prepared.loaded is not None:
            viewer = self.viewer_for(prepared.case.modality)
            if viewer is not None:
                viewer.show_case(prepared.loaded, prepared.display)
                viewer.show_verdict(prepared.verdict, prepared.heatmap)
        self.prompt_panel.set_prompt(prepared.prompt)
        self.verdict_panel.show_verdict(prepared.verdict)
        self._show_profile_note(prepared.verdict)
        self._show_chat(prepared.verdict, prepared.turns)
        self.verdict_panel.show_decision(prepared.decision)
        if prepared.problem:
            self.verdict_panel.show_error(prepared.problem)
        self._update_enabled()
        self.case_shown.emit(prepared.case.id)

    def _recompose(self) -> None:
        if self._current is not None and self._current.case.id is not None:
            self.show_case(self._current.case.id)

    def _refresh_prompt(self) -> None:
        """Recompose only the prompt (the viewer's slice or range changed), off the GUI thread."""
        if self.service is None or self._current is None or self._current.loaded is None:
            return
        profile = self.current_profile()
        if profile is None:
            return
        service, case = self.service, self._current.case
        switches, viewer_state = self.prompt_panel.switches(), self._current_viewer_state()

        def work(job: Job):
            inputs = PromptInputs.of(service, profile, switches, viewer_state)
            return case.id, service.compose_prompt(case, profile, switches, None, viewer_state), inputs

        def done(result) -> None:
            case_id, prompt, inputs = result
            if self._current is not None and self._current.case.id == case_id:
                self._current.prompt, self._current.prompt_inputs = prompt, inputs
                self.prompt_panel.set_prompt(prompt)

        self._run("Composing the prompt", work, done)

    # ------------------------------------------------------------------ inspection

    def inspect_current(self) -> None:
        if self.service is None or self._current is None or self._current.loaded is None:
            return
        if self._inspect_job is not None:
            return
        profile = self.current_profile()
        if profile is None:
            self.notify("Create a profile first (Profile ▸ New profile): it says what normal means.", "warning")
            return
        case = self._current.case
        service = self.service
        endpoint = self.app_settings.endpoint
        if endpoint.configured:
            if not self.key_destination_allowed(endpoint):
                return
            switches = self.prompt_panel.switches()
            override = self.prompt_panel.text_override()
            viewer_state = self._current_viewer_state()
            previewed = self._previewed_prompt(profile, switches, override, viewer_state)

            async def ask(job: Job) -> Verdict:
                import asyncio

                job.report(0.1, f"Asking {endpoint.model}…")
                prompt = (
                    previewed
                    if previewed is not None
                    else await asyncio.get_running_loop().run_in_executor(
                        None, lambda: service.compose_prompt(case, profile, switches, override, viewer_state)
                    )
                )
                job.report(0.3, f"Waiting for {endpoint.model}…")
                return await service.inspect_with_vlm(case, prompt, endpoint)

            self._inspect_job = self._run(
                "Inspecting", ask, self._inspection_done, self._inspection_failed, blocking=False
            )
            self.verdict_panel.show_busy(f"Asking {endpoint.model}… (Esc cancels)")
        else:
            viewer_state = self._current_viewer_state()

            def score(job: Job) -> Verdict:
                job.report(0.05, "Offline detector: preparing references…")
                return service.inspect_offline(
                    case,
                    profile,
                    progress=lambda f: job.report(
                        0.05 + 0.85 * f, "Offline detector: learning the references and scoring…"
                    ),
                    is_cancelled=job.is_cancelled,
                    viewer=viewer_state,
                )

            self._inspect_job = self._run("Inspecting offline", score, self._inspection_done, self._inspection_failed)
            self.verdict_panel.show_busy("Offline detector running (no VLM endpoint set)… (Esc cancels)")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self._update_enabled()

    def _previewed_prompt(
        self, profile: Profile, switches: PromptSwitches, override: str | None, viewer_state: ViewerState
    ) -> ComposedPrompt | None:
        """The prompt the panel shows, when it is exactly what Inspect would compose now (no edited
        text, the same profile, switches, view and Set-of-Mark settings): it is sent as it is."""
        current = self._current
        if current is None or current.prompt is None or current.prompt_inputs is None or override is not None:
            return None
        assert self.service is not None
        now = PromptInputs.of(self.service, profile, switches, viewer_state)
        return current.prompt if current.prompt_inputs == now else None

    def cancel_inspection(self) -> None:
        if self._inspect_job is not None:
            self._inspect_job.cancel()

    def _end_inspection(self) -> None:
        self._inspect_job = None
        self.progress.hide()
        self.cancel_button.hide()
        self._update_enabled()

    def _inspection_done(self, verdict: Verdict) -> None:
        self._end_inspection()
        self._refresh_case_row(verdict.case_id)
        if self._current is not None and self._current.case.id == verdict.case_id:
            self._current.verdict = verdict
            self._current.heatmap = self.service.heatmap(verdict) if self.service else None
            viewer = self.viewer_for(self._current.case.modality)
            if viewer is not None:
                viewer.show_verdict(verdict, self._current.heatmap)
            self.verdict_panel.show_verdict(verdict)
            self._show_profile_note(verdict)
            self._current.turns = []
            self._show_chat(verdict, [])
        self.inspection_finished.emit(verdict.case_id)

    def _inspection_failed(self, message: str) -> None:
        self._end_inspection()
        self.verdict_panel.show_error(message)
        self.notify(message)
        if self._current is not None and self._current.case.id is not None:
            self._refresh_case_row(self._current.case.id)
        self.inspection_finished.emit(-1)

    # ------------------------------------------------------------------ window

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        projects = [p for p in paths if p.endswith(".anomalens")]
        if projects:
            self.open_project(projects[0])
        elif paths:
            self.add_case_files(paths)

    def restore_layout(self) -> None:
        stored = _layout_settings(self.settings_file)
        geometry, state = stored.value("geometry"), stored.value("windowState")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._inspect_job is not None and self.isVisible() and not getattr(self, "force_close", False):
            answer = QMessageBox.question(
                self, "Inspection running", "An inspection is still running. Cancel it and quit?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        stored = _layout_settings(self.settings_file)
        stored.setValue("geometry", self.saveGeometry())
        stored.setValue("windowState", self.saveState())
        self.close_project()
        self.runner.shutdown()
        super().closeEvent(event)


def _layout_settings(settings_file: Path | None) -> QSettings:
    """Window geometry and dock layout, kept beside the app settings (not in the registry/dconf)."""
    from inspector.paths import user_data_dir

    folder = settings_file.parent if settings_file is not None else user_data_dir()
    return QSettings(str(folder / "layout.ini"), QSettings.Format.IniFormat)
