"""Shared test setup: isolated user folders, real data location, common fixtures.

``ANOMALENS_NO_QT=1`` runs the suite as if Qt were not installed: importing PySide6, shiboken6,
pyqtgraph, pytest-qt or VTK's Qt widgets (``vtkmodules.qt``) raises ModuleNotFoundError, and test
modules marked ``gui`` as a whole (a module-level ``pytestmark``) are not collected. It proves the
core and the plugins work headless. Run it as scripts/test.sh does::

    ANOMALENS_NO_QT=1 .venv/bin/python -m pytest -m "not gui" -p no:pytest-qt
"""

from __future__ import annotations

import ast
import importlib.abc
import os
import sys
from pathlib import Path

NO_QT = os.environ.get("ANOMALENS_NO_QT", "") not in ("", "0")
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "pytestqt", "vtkmodules.qt")


def _is_qt(fullname: str) -> bool:
    return any(fullname == name or fullname.startswith(name + ".") for name in QT_MODULES)


class _QtBlocker(importlib.abc.MetaPathFinder):
    """Makes the Qt stack unimportable, as on a machine where it is not installed."""

    def find_spec(self, fullname, path=None, target=None):
        if _is_qt(fullname):
            raise ModuleNotFoundError(f"No module named {fullname!r} (ANOMALENS_NO_QT=1 blocks Qt)", name=fullname)
        return None


if NO_QT:
    _loaded = sorted(name for name in sys.modules if _is_qt(name) and not name.startswith("pytestqt"))
    if _loaded:
        raise RuntimeError(f"ANOMALENS_NO_QT=1, but Qt was imported before the test setup: {', '.join(_loaded)}")
    sys.meta_path.insert(0, _QtBlocker())

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if NO_QT and config.pluginmanager.hasplugin("pytest-qt"):
        raise pytest.UsageError("ANOMALENS_NO_QT=1 needs pytest-qt disabled: add -p no:pytest-qt")


def _marked_gui_as_a_whole(path: Path) -> bool:
    """Whether a test module says ``pytestmark = pytest.mark.gui`` (alone or in a list) at its top level."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            marks = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return any(isinstance(m, ast.Attribute) and m.attr == "gui" for m in marks)
    return False


class _GuiModuleWithoutQt(pytest.Module):
    """A test module marked gui as a whole, while Qt is blocked: never imported, no tests."""

    def collect(self):
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    """Without Qt, a module marked gui as a whole is not even imported (it may import Qt at its top)."""
    if NO_QT and _marked_gui_as_a_whole(module_path):
        return _GuiModuleWithoutQt.from_parent(parent, path=module_path)
    return None


# Qt picks its platform at QApplication creation; the test command runs under Xvfb with xcb so
# VTK can render, and falls back to offscreen where no display exists.
if not os.environ.get("QT_QPA_PLATFORM"):
    os.environ["QT_QPA_PLATFORM"] = "xcb" if os.environ.get("DISPLAY") else "offscreen"


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test may read or write the real user's settings, recent list or keyring entries."""
    home = tmp_path_factory.mktemp("anomalens-home")
    monkeypatch.setenv("ANOMALENS_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return home


@pytest.fixture
def shared_data() -> Path:
    from inspector.paths import shared_data_dir

    found = shared_data_dir()
    if found is None:
        pytest.skip("real data not found: put the shared data at ../shared/data or set ANOMALENS_SHARED_DATA")
    return found


@pytest.fixture
def registry():
    from inspector.plugins import discover

    return discover()


def textured_image(seed: int = 0, size: tuple[int, int] = (160, 200)) -> np.ndarray:
    """A deterministic RGB test image with some structure (not flat, not pure noise)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    base = 120 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 6, (h, w))
    rgb = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=2)
    return np.clip(rgb, 0, 255).astype(np.uint8)
