"""The main window's chrome: menus and actions, the toolbar, the message banner, the status bar.

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from views.batch_panel import BatchPanel
from views.window_base import WindowBase

log = logging.getLogger("views.main_window")


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


class WindowChrome(WindowBase):
    """Menus, toolbar, banner and status bar of `MainWindow`, and `notify`."""

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
        self.act_add = self._action(
            "&Add cases…", self.add_cases_dialog, "Ctrl+Shift+O", "Add images (or other supported files) as cases"
        )
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_new_profile = self._action("New &profile…", self.new_profile_dialog)
        self.act_edit_profile = self._action("&Edit profile…", self.edit_profile_dialog, "Ctrl+E")
        self.act_promote = self._action(
            "Use this case as a normal &reference",
            self.promote_current_case,
            tip="The operator confirmed it normal (N): add it to the profile's references",
        )
        self.act_add_defect = self._action(
            "Add this finding to the expected &defects…",
            self.add_current_defect,
            tip="The operator confirmed it anomalous (A): describe the defect for the profile",
        )
        self.act_settings = self._action("VLM &endpoint…", self.settings_dialog, "Ctrl+,")
        self.act_localization = self._action(
            "&Localization (Set-of-Mark)…",
            self.localization_dialog,
            tip="Where numbered marks come from: segments, heat map, SAM",
        )
        self.act_batch = self._action(
            "Inspect &selected cases (batch)",
            self.inspect_selected,
            "Ctrl+Shift+Return",
            "Inspect the selected cases (or all not yet inspected) in the background",
        )
        self.act_inspect = self._action(
            "&Inspect", self.inspect_current, "Ctrl+Return", "Inspect the selected case (Ctrl+Return / F5)"
        )
        self.act_inspect.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("F5")])
        self.act_cancel = self._action("&Cancel", self.cancel_inspection, "Esc", "Cancel the running inspection")
        self.act_normal = self._action(
            "Decide &normal", lambda: self.record_decision("normal"), "N", "Operator decision: normal (N)"
        )
        self.act_anomalous = self._action(
            "Decide &anomalous", lambda: self.record_decision("anomalous"), "A", "Operator decision: anomalous (A)"
        )
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
        for action in (
            self.act_inspect,
            self.act_batch,
            self.act_cancel,
            self.act_normal,
            self.act_anomalous,
            self.act_next,
        ):
            inspect_menu.addAction(action)
        inspect_menu.addSeparator()
        self.act_ab = self._action(
            "&A/B comparison…",
            self.ab_comparison,
            tip="Two prompt variants or two models on the same cases, then the evaluation",
        )
        inspect_menu.addAction(self.act_ab)
        inspect_menu.addAction(
            self._action(
                "&Evaluation…",
                self.show_evaluation,
                "Ctrl+Shift+E",
                "How good the verdicts are on this project's confirmed cases",
            )
        )
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
