"""The example plugin of docs/plugins.md (examples/plugins/heightmap_modality), and the plugin
folder rules every built-in modality follows.

The example is a real third-party-style modality discovered from its own folder next to the
built-in ones: reader, renderer, offline input, viewer, presets and demo samples, all in one folder.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.demo import build_demo_project
from inspector.inspection import InspectionService
from inspector.model import CaseStatus
from inspector.plugins import PLUGIN_API_VERSION, default_plugin_dirs, discover
from inspector.prompt import PromptSwitches, available_presets, load_preset
from tests.conftest import ROOT

EXAMPLE_DIR = ROOT / "examples" / "plugins"
BUILTIN = ("dicom_modality", "image_modality", "pointcloud_modality", "timeseries_modality", "video_modality")


@pytest.fixture
def example_registry():
    return discover([*default_plugin_dirs(), EXAMPLE_DIR])


def _views_imports(path: Path) -> set[str]:
    """Modules of `views` that a file imports (absolute imports only; plugins have no others there)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
    }
    return {n for n in names if n == "views" or n.startswith("views.")}


def test_the_example_plugin_is_discovered_beside_the_built_in_ones(example_registry):
    assert example_registry.errors == []
    assert set(example_registry.loaded) == {*BUILTIN, "heightmap_modality"}
    plugin = example_registry.modality("height_map")
    assert plugin.viewer.endswith(".viewer:HeightMapViewer") and plugin.default_preset == "surface_profile"
    assert plugin.presets is not None and plugin.samples is not None


def test_every_modality_is_one_folder_with_its_viewer_and_samples(example_registry):
    for plugin in example_registry.modalities.values():
        package = sys.modules[plugin.viewer.partition(":")[0].rsplit(".", 1)[0]]
        folder = Path(package.__file__).resolve().parent
        assert folder.parent in (ROOT / "plugins", EXAMPLE_DIR), plugin.name
        assert (folder / "viewer.py").is_file() and (folder / "samples.py").is_file(), plugin.name
        assert plugin.samples is not None, f"{plugin.name} brings no demo samples"
        if plugin.presets is not None:
            assert Path(plugin.presets).parent == folder
        assert plugin.default_preset in available_presets(), plugin.name


def test_viewers_use_only_the_public_viewer_api():
    viewers = [*sorted((ROOT / "plugins").glob("*/viewer.py")), EXAMPLE_DIR / "heightmap_modality" / "viewer.py"]
    assert len(viewers) == len(BUILTIN) + 1
    for path in viewers:
        assert _views_imports(path) == {"views.viewer_api"}, path
    # and nothing else in a plugin folder imports Qt's side of the workstation
    for path in [*ROOT.glob("plugins/*/*.py"), *EXAMPLE_DIR.glob("*/*.py")]:
        if path.name != "viewer.py":
            assert _views_imports(path) == set(), path


def test_its_preset_is_available_by_name_and_worded_for_height_maps(example_registry):
    preset = load_preset("surface_profile")
    assert "profilometer" in preset.system and preset.name == "surface_profile"
    assert PLUGIN_API_VERSION == 2


def test_its_samples_join_the_demo_and_are_inspected_offline(tmp_path, example_registry):
    store = build_demo_project(tmp_path / "demo.anomalens", example_registry)
    service = InspectionService(store, example_registry)
    try:
        profile = next(p for p in store.profiles() if p.modality == "height_map")
        assert len(store.references(profile.id)) == 2
        cases = {c.name: c for c in store.cases() if c.modality == "height_map"}
        assert sorted(cases) == ["surface_normal.npy", "surface_scratch.npy"]
        assert {c.ground_truth for c in cases.values()} == {"normal", "anomalous"}
        prompt = service.compose_prompt(cases["surface_scratch.npy"], profile, PromptSwitches())
        assert "profilometer" in prompt.system and "ground steel surface" in prompt.text
        verdict = service.inspect_offline(cases["surface_scratch.npy"], profile)
        assert verdict.score is not None and store.case(cases["surface_scratch.npy"].id).status in (
            CaseStatus.NORMAL,
            CaseStatus.ANOMALOUS,
        )
        # the built-in profiles come first, the brick panels leading (the demo opens on them)
        assert store.profiles()[0].modality == "image"
    finally:
        service.close()
        store.close()


def test_a_damaged_height_map_is_refused_with_a_message(tmp_path, example_registry):
    from inspector.imaging import CaseReadError

    plugin = example_registry.modality("height_map")
    (tmp_path / "words.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    for name in ("words.npy", "cube.npy"):
        with pytest.raises(CaseReadError, match=name):
            plugin.read(tmp_path / name)


@pytest.mark.gui
def test_its_viewer_shows_a_case_in_the_window(qtbot, tmp_path, example_registry):
    from inspector.settings import AppSettings
    from views.main_window import MainWindow

    build_demo_project(tmp_path / "demo.anomalens", example_registry).close()
    window = MainWindow(AppSettings(), example_registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    assert window.open_project(tmp_path / "demo.anomalens")
    case = next(c for c in window.store.cases() if c.modality == "height_map")
    with qtbot.waitSignal(window.case_shown, timeout=60000):
        window.show_case(case.id)
    viewer = window.viewer_for("height_map")
    module = __import__(example_registry.modality("height_map").viewer.partition(":")[0], fromlist=["_"])
    assert isinstance(viewer, module.HeightMapViewer)
    qtbot.waitUntil(lambda: "µm" in viewer.status.text(), timeout=30000)
    assert viewer.picture.pixmap().width() == 128
    window.force_close = True
    window.close()
