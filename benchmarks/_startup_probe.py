"""Child process of gui_responsiveness.py: start the workstation like main.py does, report when shown."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from inspector.paths import resources_dir
from inspector.plugins import discover
from inspector.settings import load_settings
from views.main_window import MainWindow


def main() -> None:
    app = QApplication(sys.argv[:1])
    app.setStyleSheet((resources_dir() / "style.qss").read_text(encoding="utf-8"))
    window = MainWindow(load_settings(), discover())
    window.show()
    window.open_project(sys.argv[1])

    def shown() -> None:
        print(f"SHOWN {time.time():.6f}", flush=True)
        window.force_close = True
        window.close()
        app.quit()

    QTimer.singleShot(0, shown)  # first turn of the event loop after show: the window is on screen
    app.exec()


if __name__ == "__main__":
    main()
