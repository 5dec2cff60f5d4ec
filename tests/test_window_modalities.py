"""The real window moving between cases of all five modalities (the demo project).

Each modality's viewer is a dock; they share one place as tabs, and the shown case's viewer must
be the one in front, wide enough to work with, with the case's own profile selected.
"""

from __future__ import annotations

import pytest

from inspector.demo import build_demo_project
from inspector.settings import AppSettings
from views.main_window import MainWindow

pytestmark = pytest.mark.gui


def test_switching_between_modalities_brings_the_right_viewer_to_the_front(qtbot, tmp_path, registry):
    project = tmp_path / "demo.anomalens"
    build_demo_project(project, registry).close()
    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    assert window.open_project(project)
    cases = {}
    for case in window.store.cases():
        cases.setdefault(case.modality, case)
    assert set(cases) == {"image", "dicom", "point_cloud", "time_series", "video"}
    order = ["image", "time_series", "point_cloud", "video", "dicom", "image", "video"]
    for modality in order:
        case = cases[modality]
        with qtbot.waitSignal(window.case_shown, timeout=60000, check_params_cb=lambda shown, c=case: shown == c.id):
            window.case_browser.select_case(case.id)
        qtbot.wait(50)
        front, _ = window._viewers[modality]
        assert not front.visibleRegion().isEmpty(), modality
        assert front.width() >= 400, (modality, front.width())
        behind = [m for m, (dock, _) in window._viewers.items() if m != modality and not dock.visibleRegion().isEmpty()]
        assert behind == [], (modality, behind)
        assert window.current_profile().modality == modality  # the case's own profile is selected
    docks = [dock for dock, _ in window._viewers.values()]
    assert len(docks) == 5 and set(window.tabifiedDockWidgets(docks[0])) == set(docks[1:])
    window.force_close = True
    window.close()
