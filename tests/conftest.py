"""Shared test setup: isolated user folders, real data location, common fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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
