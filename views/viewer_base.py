"""What every modality viewer dock offers the main window (plugins implement this for theirs)."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QWidget

from inspector.model import LoadedCase, Verdict


class CaseViewer(QWidget):
    """Base class of the modality viewers: show a case, then overlay a verdict on it."""

    def show_case(self, loaded: LoadedCase) -> None:
        raise NotImplementedError

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError
