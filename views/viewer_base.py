"""What every modality viewer dock offers the main window (plugins implement this for theirs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from inspector.model import LoadedCase, Verdict, ViewerState


class CaseViewer(QWidget):
    """Base class of the modality viewers: show a case, then overlay a verdict on it.

    `prepare_display` runs in a worker thread before `show_case` runs on the GUI thread: heavy
    conversions (a 4096x4096 image into a QImage, a million points into VTK arrays) belong there so
    opening a big case never stalls the window.

    `render_options` tells the modality's renderer what the operator is looking at (the current
    slice, a frame range, a selected time range; ``"drawn_regions"`` for boxes the operator drew)
    so the model sees the same; emit `render_options_changed` when that changes and the window
    recomposes the prompt. The window reads it as a typed `ViewerState` (`viewer_state`).
    """

    render_options_changed = Signal()

    def render_options(self) -> dict[str, Any]:
        return {}

    def viewer_state(self) -> ViewerState:
        """What the operator looks at, typed: the modality's options and the drawn regions."""
        return ViewerState.from_render_options(self.render_options())

    def _action(
        self, text: str, shortcuts: Any, slot: Any, tip: str, checkable: bool = False, checked: bool = True
    ) -> QAction:
        """A button on the viewer's `toolbar` whose shortcut(s) work while the viewer has focus."""
        keys = shortcuts if isinstance(shortcuts, list | tuple) else [shortcuts]
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setToolTip(tip)
        action.setCheckable(checkable)
        if checkable:
            action.setChecked(checked)
            action.toggled.connect(slot)
        else:
            action.triggered.connect(slot)
        self.toolbar.addAction(action)  # type: ignore[attr-defined] - every viewer has a toolbar
        self.addAction(action)
        return action

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> Any:
        return None

    def show_case(self, loaded: LoadedCase, display: Any = None) -> None:
        raise NotImplementedError

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError
