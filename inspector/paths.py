"""Where things live: bundled resources (also inside a PyInstaller bundle) and user folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def app_root() -> Path:
    """The repository root, or the unpacked bundle folder when frozen by PyInstaller."""
    if getattr(sys, "frozen", False):
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return app_root() / "resources"


def bundled_plugins_dir() -> Path:
    return app_root() / "plugins"


def user_data_dir() -> Path:
    """Per-user data folder (recent projects list, user plugins, default project)."""
    override = os.environ.get("ANOMALENS_HOME")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "Anomalens"


def user_plugins_dir() -> Path:
    return user_data_dir() / "plugins"


def shared_data_dir() -> Path | None:
    """The real benchmark data (`../shared/data` beside the repository), if present."""
    override = os.environ.get("ANOMALENS_SHARED_DATA")
    candidates = [Path(override)] if override else []
    candidates.append(app_root().parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None
