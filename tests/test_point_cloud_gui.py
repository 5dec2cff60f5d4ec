"""The point-cloud case in the real window: VTK viewer, inspection against the loopback VLM, and
the model's box on a depth view coming back as highlighted points on the cloud.

The VLM is the loopback OpenAI-compatible server (tests/loopback_vlm.py); its reply puts a box on
"view 1" of the depth grid the app sent. The expected point ids are computed independently from
the same render, and the viewer's red marks are read back from the VTK window
(vtkWindowToImageFilter: QWidget.grab() cannot read OpenGL content).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from inspector.model import LoadedCase
from inspector.plugins import discover
from inspector.settings import AppSettings, EndpointSettings
from tests.loopback_vlm import LoopbackVLM, Reply
from tests.test_point_cloud_formats import plugin_module, write_ply
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

LOCAL_BOX = (110.0, 100.0, 200.0, 180.0)  # in view 1's own pixels


def _red_pixels(rgb: np.ndarray) -> int:
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return int(((r > 200) & (g < 90) & (b < 90)).sum())


def test_box_on_a_depth_view_highlights_its_points_in_the_viewer(qtbot, tmp_path):
    part = plugin_module("synthetic").make_part(7, "dent", n_points=20_000)
    colors = np.full((len(part.points), 3), 200, np.uint8)
    path = write_ply(tmp_path / "bracket_07.ply", part.points, colors, part.normals)

    # What the app will send: the default render, computed here independently of the window.
    registry = discover()
    plugin = registry.modality("point_cloud")
    grid = plugin.render(plugin.read(path), {})[0]
    tile = grid.view_map.params["tiles"][0]
    x, y, _, _ = tile["rect"]
    box = [x + LOCAL_BOX[0], y + LOCAL_BOX[1], x + LOCAL_BOX[2], y + LOCAL_BOX[3]]
    under = grid.view_map.arrays["point_index"][int(box[1]) : int(box[3]), int(box[0]) : int(box[2])]
    expected = np.unique(under[under >= 0])
    assert expected.size > 100
    reply = json.dumps(
        {
            "anomalous": True,
            "confidence": 0.9,
            "reason": "A dent on the broad face.",
            "regions": [{"view": "view 1", "box": box, "label": "dent"}],
        }
    )

    with LoopbackVLM(responder=lambda request: Reply(reply, p_anomalous=0.93)) as server:
        window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        window.resize(1100, 720)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        assert window.open_project(tmp_path / "scans.anomalens")
        window.new_profile_dialog()
        dialog = window.profile_dialog
        dialog.name.setText("Bracket")
        dialog.class_name.setText("cast bracket")
        dialog.preset.setCurrentText("point_cloud")
        dialog.accept()

        window.add_case_files([str(path)])
        qtbot.waitUntil(lambda: window.case_browser.row_count() == 1, timeout=20000)
        case = window.store.cases()[0]
        assert case.modality == "point_cloud" and case.metadata["points"] == 20_000
        with qtbot.waitSignal(window.case_shown, timeout=30000):
            window.case_browser.select_case(case.id)
        viewer = window.viewer_for("point_cloud")
        assert type(viewer).__name__ == "PointCloudViewer"
        assert viewer.render_options() == {}  # the model sees render(loaded, {}) by default
        assert viewer.mapper.GetInput().GetNumberOfPoints() == 20_000
        assert viewer.color_mode.currentText() == "RGB"
        assert window.prompt_panel.image_count() == 1
        assert _red_pixels(viewer.grab_rgb()) == 0

        # Inspect: the request carries the depth grid; the answer's box becomes point ids.
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        with qtbot.waitSignal(window.inspection_finished, timeout=60000):
            qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        request = server.chat_requests[-1]
        assert request.image_sizes == [(grid.image.shape[1], grid.image.shape[0])]
        assert "depth renders" in json.dumps(request.body["messages"])  # the point-cloud preset
        verdict = window.store.latest_verdict(case.id)
        assert verdict.anomalous and len(verdict.regions) == 1
        region = verdict.regions[0]
        assert region.detail["view"] == "view 1" and region.label == "dent"
        assert region.detail["point_ids"] == expected.tolist() and region.detail["points"] == expected.size
        assert (region.x0, region.y0, region.x1, region.y1) == LOCAL_BOX

        # The viewer marks exactly those points, in red, on the cloud.
        np.testing.assert_array_equal(viewer.highlighted_ids, expected)
        assert viewer.mark_actor.GetVisibility()
        assert viewer.mark_mapper.GetInput().GetNumberOfPoints() == expected.size
        viewer.camera_preset("front")  # the side the model saw in view 1
        marked = _red_pixels(viewer.grab_rgb())
        assert marked > 50
        viewer.show_marks.setChecked(False)
        assert _red_pixels(viewer.grab_rgb()) < marked / 10
        viewer.show_marks.setChecked(True)

        # Viewer controls: colour modes, camera presets in the canonical pose, picking.
        viewer.color_mode.setCurrentText("Depth")
        assert viewer.mapper.GetArrayName() == "depth"
        viewer.color_mode.setCurrentText("Height")
        assert viewer.mapper.GetArrayName() == "height"
        loaded: LoadedCase = window.service.load_case(case)
        viewer.camera_preset("top")
        toward, _ = loaded.data.camera("top")
        direction = np.array(viewer.renderer.GetActiveCamera().GetDirectionOfProjection())
        np.testing.assert_allclose(direction, -toward, atol=1e-6)
        viewer.camera_preset("front")
        centre = viewer.vtk_widget.rect().center()
        qtbot.mouseClick(viewer.vtk_widget, Qt.MouseButton.LeftButton, pos=centre)  # a click, not a drag
        text = viewer.readout.text()
        assert text.startswith("point #") and "normal (" in text
        picked = int(text.split()[1].lstrip("#").replace(",", ""))
        renderer = viewer.renderer
        renderer.SetWorldPoint(*loaded.data.points[picked], 1.0)
        renderer.WorldToDisplay()
        px, py, _ = renderer.GetDisplayPoint()
        _, h = viewer.render_window.GetSize()
        assert abs(px - centre.x()) < 8 and abs((h - 1 - py) - centre.y()) < 8  # the point under the cursor
        assert viewer.pick_at(2, 2) is None and "no point" in viewer.readout.text()

        window.force_close = True
        window.close()


def test_viewer_draws_a_subset_while_dragging_and_the_full_cloud_after(qtbot):
    from PySide6.QtCore import QPoint

    from plugins.pointcloud_modality.viewer import PointCloudViewer

    cloud, _ = plugin_module("cloud").make_cloud(plugin_module("synthetic").make_part(4, n_points=150_000).points)
    loaded = LoadedCase("point_cloud", cloud, {"format": "test"})
    viewer = PointCloudViewer()
    qtbot.addWidget(viewer)
    viewer.resize(360, 280)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.show_case(loaded, PointCloudViewer.prepare_display(loaded))
    assert viewer.color_mode.currentText() == "Height"  # no colours in this cloud
    assert not viewer.color_mode.model().item(2).isEnabled()
    viewer.color_mode.setCurrentText("Depth")
    before = viewer.grab_rgb()
    viewer._full_frame_s = 1.0  # as slow as a million points on a software rasteriser
    widget = viewer.vtk_widget
    start = widget.rect().center()
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(widget, start + QPoint(12 * step, 0))
    during = viewer.mapper.GetInput().GetNumberOfPoints()
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=start + QPoint(60, 0))
    assert during < 150_000 and during == viewer._prepared.levels[-1].GetNumberOfPoints()
    assert viewer.mapper.GetInput().GetNumberOfPoints() == 150_000
    assert not viewer.readout.text().startswith("point #")  # a drag is not a pick
    after = viewer.grab_rgb()
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 1.0  # the camera turned
    depth = viewer._prepared.full.GetPointData().GetArray("depth")
    direction = np.array(viewer.renderer.GetActiveCamera().GetDirectionOfProjection())
    values = np.array([depth.GetValue(i) for i in range(0, 150_000, 5000)])
    np.testing.assert_allclose(values, -(cloud.points[::5000] @ direction), rtol=1e-4, atol=1e-3)

    # An offline verdict: region points in red, the hottest points coloured by their score.
    from inspector.model import Region, ScoreSource, Verdict, VerdictSource

    region = Region(10, 10, 40, 40, detail={"view": "view 1", "points": 3, "point_ids": [5, 7, 999_999]})
    verdict = Verdict(
        case_id=1,
        source=VerdictSource.OFFLINE,
        anomalous=True,
        score=0.9,
        score_source=ScoreSource.OFFLINE_CALIBRATED,
        regions=[region],
        details={"top_points": [[11, 0.97], [12, 0.8], [13, 0.2]]},
    )
    viewer.show_verdict(verdict, None)
    assert viewer.highlighted_ids.tolist() == [5, 7]  # ids outside the cloud are ignored
    assert viewer.hot_ids.tolist() == [11, 12]  # below 0.5 is not hot
    assert viewer.hot_actor.GetVisibility() and viewer.hot_mapper.GetInput().GetNumberOfPoints() == 2
    assert "1 region, 2 points marked, 2 hot points" in viewer.readout.text()
    assert "anomaly 0.97" in viewer.describe_point(11) and "in a marked region" in viewer.describe_point(5)
    viewer.clear()
    assert not viewer.actor.GetVisibility() and not viewer.mark_actor.GetVisibility()
    assert viewer.highlighted_ids.size == 0 and viewer.readout.text() == ""
