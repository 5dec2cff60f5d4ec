"""Plugin discovery: built-ins load through the public API, broken plugins are reported and skipped."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.model import LoadedCase, View, ViewMap
from inspector.paths import bundled_plugins_dir
from inspector.plugins import ModalityPlugin, PluginRegistry, UnsupportedFileError, discover

GOOD_PLUGIN = """
from inspector.model import LoadedCase, View, ViewMap
from inspector.plugins import ModalityPlugin
import numpy as np

def _read(path):
    values = [float(v) for v in path.read_text().split()]
    return LoadedCase("demo_signal", np.array(values), {"n": len(values)})

def _render(case, options):
    return [View("plot", np.zeros((8, 8, 3), np.uint8), ViewMap("sample_range", {"n": len(case.data)}))]

def register(registry):
    registry.register_modality(ModalityPlugin(
        name="demo_signal", title="Demo signal", extensions=(".sig",), read=_read, render=_render))
"""


def _write(folder, name, text):
    (folder / name).write_text(text)


def test_builtin_image_modality_is_a_regular_plugin():
    registry = discover([bundled_plugins_dir()])
    assert registry.errors == []
    assert "image_modality" in registry.loaded
    image = registry.modality("image")
    assert ".png" in image.extensions and image.viewer.endswith("image_modality.viewer:ImageViewer")


def test_third_party_plugin_is_discovered_and_broken_ones_are_skipped(tmp_path):
    _write(tmp_path, "good_signal.py", GOOD_PLUGIN)
    _write(tmp_path, "syntax_error.py", "def register(registry):\n    return (\n")
    _write(tmp_path, "raises.py", "def register(registry):\n    raise RuntimeError('needs a licence server')\n")
    _write(tmp_path, "no_register.py", "X = 1\n")
    _write(tmp_path, "future_api.py", "PLUGIN_API_VERSION = 99\ndef register(registry):\n    pass\n")
    _write(tmp_path, "missing_dep.py", "import a_module_that_does_not_exist\n")
    _write(tmp_path, "_private.py", "raise SystemExit('must not even be imported')\n")
    registry = discover([bundled_plugins_dir(), tmp_path])
    builtin = {"image_modality", "dicom_modality", "pointcloud_modality", "timeseries_modality", "video_modality"}
    assert set(registry.loaded) == builtin | {"good_signal"}
    failed = {e.plugin: e.message for e in registry.errors}
    assert set(failed) == {"syntax_error", "raises", "no_register", "future_api", "missing_dep"}
    assert "needs a licence server" in failed["raises"]
    assert "register(registry)" in failed["no_register"]
    assert "plugin API 99" in failed["future_api"]
    assert "a_module_that_does_not_exist" in failed["missing_dep"]
    signal_file = tmp_path / "x.sig"
    signal_file.write_text("1 2 3")
    plugin = registry.modality_for_path(signal_file)
    loaded = plugin.read(signal_file)
    assert loaded.metadata == {"n": 3}
    assert plugin.render(loaded, {})[0].view_map.kind == "sample_range"


def test_modality_by_content_beats_a_misleading_extension(tmp_path, registry):
    from PIL import Image

    disguised = tmp_path / "scan.dat"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(disguised, format="PNG")
    assert registry.modality_for_path(disguised).name == "image"
    unknown = tmp_path / "notes.xyzabc"
    unknown.write_text("hello")
    with pytest.raises(UnsupportedFileError, match=r"unsupported file type \.xyzabc"):
        registry.modality_for_path(unknown)


def test_registering_the_same_modality_twice_is_refused():
    registry = PluginRegistry()
    plugin = ModalityPlugin(
        name="x",
        title="X",
        extensions=(".X",),
        read=lambda p: LoadedCase("x", None),
        render=lambda c, o: [View("v", np.zeros((1, 1, 3), np.uint8), ViewMap("none"))],
    )
    registry.register_modality(plugin)
    assert registry.supported_extensions() == [".x"]
    with pytest.raises(ValueError):
        registry.register_modality(plugin)
