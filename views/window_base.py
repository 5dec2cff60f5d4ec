"""What every part of the main window shares: its signals, its state and the few methods the parts
call on each other.

`MainWindow` is assembled from parts in their own modules (`window_chrome`, `viewer_docks`,
`batch_actions`, `review_actions`, `settings_actions`), each a mixin on this base. The state is
declared here, once, with its type; `MainWindow.__init__` creates it. Nothing here runs on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QDockWidget, QLabel, QMainWindow, QMenu, QProgressBar, QPushButton, QToolBar

if TYPE_CHECKING:
    from inspector.inspection import InspectionService
    from inspector.model import Profile
    from inspector.plugins import PluginRegistry
    from inspector.session import PreparedCase
    from inspector.settings import AppSettings
    from inspector.store import ProjectStore
    from inspector.vlm.batch import BatchProgress
    from views.batch_panel import BatchPanel
    from views.case_browser import CaseBrowser
    from views.prompt_panel import PromptPanel
    from views.verdict_panel import VerdictPanel
    from views.viewer_api import CaseViewer
    from views.window_chrome import Banner
    from views.workers import AsyncRunner, Job


class WindowBase(QMainWindow):
    inspection_finished = Signal(int)  # case id, after a verdict is stored and shown
    case_shown = Signal(int)
    followup_finished = Signal(int)  # verdict id (-1 on failure), after a follow-up turn is stored
    evaluation_shown = Signal()
    batch_finished = Signal(int)  # batch id (0 offline, -1 failed or cancelled), after the case list is refreshed

    # the application and the open project
    app_settings: AppSettings
    settings_file: Path | None
    registry: PluginRegistry
    store: ProjectStore | None
    service: InspectionService | None
    runner: AsyncRunner
    last_error: str

    # docks, panels and chrome
    case_browser: CaseBrowser
    prompt_panel: PromptPanel
    verdict_panel: VerdictPanel
    batch_panel: BatchPanel
    cases_dock: QDockWidget
    verdict_dock: QDockWidget
    prompt_dock: QDockWidget
    view_menu: QMenu
    recent_menu: QMenu
    profile_combo: QComboBox
    banner: Banner
    banner_bar: QToolBar
    endpoint_label: QLabel
    project_label: QLabel
    progress: QProgressBar
    cancel_button: QPushButton
    act_new: QAction
    act_open: QAction
    act_add: QAction
    act_quit: QAction
    act_new_profile: QAction
    act_edit_profile: QAction
    act_promote: QAction
    act_add_defect: QAction
    act_settings: QAction
    act_localization: QAction
    act_batch: QAction
    act_inspect: QAction
    act_cancel: QAction
    act_normal: QAction
    act_anomalous: QAction
    act_next: QAction
    act_ab: QAction

    # what is shown and what runs
    _current: PreparedCase | None
    _viewers: dict[str, tuple[QDockWidget, CaseViewer]]
    _viewer_classes: dict[str, type[CaseViewer] | None]
    _inspect_job: Job | None
    _batch_job: Job | None
    _batch_lock: threading.Lock
    _batch_progress: BatchProgress | None
    _prompt_refresh_timer: QTimer

    if TYPE_CHECKING:  # defined by MainWindow or one of the parts; declared for the others

        def _run(
            self,
            title: str,
            function: Callable[..., Any],
            on_done: Callable[[Any], None],
            on_error: Callable[[str], None] | None = None,
            blocking: bool = True,
        ) -> Job: ...
        def notify(self, message: str, level: str = "error") -> None: ...
        def current_profile(self) -> Profile | None: ...
        def refresh_cases(self) -> None: ...
        def open_project(self, path: str | Path) -> bool: ...
        def _update_enabled(self) -> None: ...
        def _recompose(self) -> None: ...
        def _refresh_prompt(self) -> None: ...
        def _save_settings(self) -> None: ...
        def _show_chat(self, verdict: Any, turns: list[Any]) -> None: ...
        def _refresh_case_row(self, case_id: int) -> None: ...
        def localization_settings(self) -> dict: ...
        def show_evaluation(self, grouping: str | None = None) -> None: ...
        def key_destination_allowed(self, endpoint: Any = None) -> bool: ...
        def _update_endpoint_label(self) -> None: ...
        # what the menus, the toolbar and the status bar call (`window_chrome`)
        def new_project_dialog(self) -> None: ...
        def open_project_dialog(self) -> None: ...
        def _fill_recent_menu(self) -> None: ...
        def add_cases_dialog(self) -> None: ...
        def new_profile_dialog(self) -> None: ...
        def edit_profile_dialog(self) -> None: ...
        def _profile_changed(self, *_: object) -> None: ...
        def promote_current_case(self) -> None: ...
        def add_current_defect(self) -> None: ...
        def settings_dialog(self) -> None: ...
        def localization_dialog(self) -> None: ...
        def inspect_selected(self) -> None: ...
        def inspect_current(self) -> None: ...
        def cancel_inspection(self) -> None: ...
        def cancel_batch(self) -> None: ...
        def record_decision(self, label: str) -> None: ...
        def ab_comparison(self, variants: Any = None) -> None: ...
        def show_plugins(self) -> None: ...
        def show_about(self) -> None: ...
