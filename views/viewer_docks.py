"""The modality viewers as docks of the main window: resolved from each plugin's import string
once, created on first use, tabbed together.

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

import importlib

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
)

from inspector.model import ViewerState
from views.viewer_api import CaseViewer
from views.window_base import WindowBase


class ViewerDocks(WindowBase):
    """One dock per modality viewer; a broken viewer plugin is reported, never fatal."""

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
        self.resizeDocks(
            [self.cases_dock, dock, self.verdict_dock],
            [cases, max(400, self.width() - cases - panels), panels],
            Qt.Orientation.Horizontal,
        )

    def _current_viewer_state(self) -> ViewerState:
        """What the current case's viewer shows (slice, frames, range, drawn regions)."""
        if self._current is None or self._current.case.modality not in self._viewers:
            return ViewerState()
        return self._viewers[self._current.case.modality][1].viewer_state()
