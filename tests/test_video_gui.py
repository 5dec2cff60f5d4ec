"""The video viewer in the real window: open, step, select a range, inspect against the loopback VLM.

The VLM is the loopback server (a real OpenAI-compatible HTTP server on 127.0.0.1); its answer
names frame numbers printed on the grid tiles and a box on one tile, and the test checks that
they come back as regions on the right frames, on the timeline and on the frame itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from inspector.model import CaseStatus, ScoreSource, Verdict, VerdictSource
from inspector.settings import AppSettings, EndpointSettings
from tests.loopback_vlm import LoopbackVLM, Reply
from tests.test_video_modality import read_stamp, write_video
from views.main_window import MainWindow

pytestmark = pytest.mark.gui


def _window(qtbot, tmp_path: Path) -> MainWindow:
    from inspector.plugins import discover

    window = MainWindow(AppSettings(), discover(), settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    return window


def _drop(widget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    widget.dropEvent(
        QDropEvent(
            QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
        )
    )


def _select(qtbot, window: MainWindow, case_id: int) -> None:
    with qtbot.waitSignal(window.case_shown, timeout=20000, check_params_cb=lambda shown: shown == case_id):
        window.case_browser.select_case(case_id)


def _shown_pixels(viewer) -> np.ndarray:
    image = viewer.image_item.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return array[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def test_video_in_the_window_range_and_tile_box_from_the_vlm(qtbot, tmp_path):
    clip = write_video(tmp_path / "walkway.mp4", frames=60, fps=25, gop=12)
    normal = write_video(tmp_path / "normal.mkv", frames=30, fps=25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:3000])
    answer = {"text": "Normal"}
    with LoopbackVLM(responder=lambda request: Reply(answer["text"], p_anomalous=0.9)) as server:
        window = _window(qtbot, tmp_path)
        assert window.open_project(tmp_path / "walkway.anomalens")
        window.new_profile_dialog()
        dialog = window.profile_dialog
        dialog.name.setText("Walkway camera 2")
        dialog.class_name.setText("a pedestrian walkway")
        dialog.preset.setCurrentText("surveillance")
        _drop(dialog.references, [normal])  # a normal video gives evenly spread reference frames
        qtbot.waitUntil(lambda: not dialog.adding and dialog.reference_count() == 12, timeout=30000)
        dialog.accept()

        _drop(window.case_browser, [clip, broken])
        qtbot.waitUntil(lambda: window.case_browser.row_count() == 2, timeout=20000)
        cases = {c.name: c for c in window.store.cases()}
        assert cases["broken.mp4"].status == CaseStatus.ERROR and "truncated" in cases["broken.mp4"].error
        assert "could not be read" in window.banner.label.text()  # the window said so, and lives on

        case = cases["walkway.mp4"]
        _select(qtbot, window, case.id)
        viewer = window.viewer_for("video")
        assert type(viewer).__name__ == "VideoViewer" and viewer.frame_count() == 60
        assert read_stamp(_shown_pixels(viewer)) == 0
        assert viewer.render_options() == {}  # the default view is what render(loaded, {}) shows
        assert window.prompt_panel.image_count() == 2  # one reference frame + the grid

        # Stepping with the keyboard shows exactly the next frames.
        window.activateWindow()
        viewer.view.setFocus()
        qtbot.waitUntil(viewer.view.hasFocus, timeout=5000)
        for _ in range(3):
            qtbot.keyClick(viewer.view, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda: viewer.shown_frame() == 3, timeout=5000)
        assert read_stamp(_shown_pixels(viewer)) == 3
        qtbot.keyClick(viewer.view, Qt.Key.Key_Comma)
        qtbot.waitUntil(lambda: viewer.shown_frame() == 2, timeout=5000)
        assert read_stamp(_shown_pixels(viewer)) == 2

        # Shift+drag on the timeline chooses the frames the model sees; the prompt follows.
        timeline = viewer.timeline
        y = timeline.height() // 2
        qtbot.mousePress(
            timeline,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.ShiftModifier,
            QPoint(round(timeline.x_for_frame(10)), y),
        )
        qtbot.mouseMove(timeline, QPoint(round(timeline.x_for_frame(25)), y))
        qtbot.mouseRelease(
            timeline,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.ShiftModifier,
            QPoint(round(timeline.x_for_frame(40)), y),
        )
        assert viewer.render_options() == {"frames": [10, 40]}
        qtbot.waitUntil(lambda: window._current.prompt.queries[0].label.startswith("frames 10-40"), timeout=10000)

        # The model answers with printed frame numbers and a box on the tile "frame 25".
        plugin = window.registry.modality("video")
        grid = plugin.render(window._current.loaded, viewer.render_options())[0]
        tile = next(t for t in grid.view_map.params["tiles"] if t["frame"] == 25)
        f = tile["w"] / 160
        box = [tile["x"] + 32 * f, tile["y"] + 40 * f, tile["x"] + 96 * f, tile["y"] + 80 * f]
        answer["text"] = json.dumps(
            {
                "anomalous": True,
                "confidence": 0.85,
                "reason": "A cart crosses the walkway.",
                "frames": [[18, 32]],
                "regions": [{"view": "frame 25", "box": box, "label": "cart"}],
            }
        )
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        with qtbot.waitSignal(window.inspection_finished, timeout=60000):
            window.inspect_current()
        request = server.chat_requests[-1]
        assert request.image_sizes[-1] == (grid.image.shape[1], grid.image.shape[0])

        verdict = window.store.latest_verdict(case.id)
        assert verdict.anomalous and verdict.score == pytest.approx(0.9, abs=0.02)
        ranges = [r for r in verdict.regions if r.x1 <= r.x0]
        boxes = [r for r in verdict.regions if r.x1 > r.x0]
        assert [r.detail for r in ranges] == [{"frames": [18, 32]}]
        assert [r.detail for r in boxes] == [{"frames": [25, 25]}] and boxes[0].label == "cart"
        assert (boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1) == pytest.approx((32, 40, 96, 80), abs=1.5)

        # The timeline paints the range; the viewer goes to the boxed frame and draws the box there.
        assert timeline.verdict_ranges == [(18, 32)]
        qtbot.waitUntil(lambda: viewer.shown_frame() == 25, timeout=5000)
        assert read_stamp(_shown_pixels(viewer)) == 25
        assert len(viewer.region_items) == 1
        rect = viewer.region_items[0].rect()
        assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((32, 40, 64, 40), abs=1.5)
        painted = timeline.grab().toImage()
        red = painted.pixelColor(round(timeline.x_for_frame(22)), 20)
        outside = painted.pixelColor(round(timeline.x_for_frame(5)), 20)
        assert red.red() > 200 and red.green() < 110
        assert not (outside.red() > 200 and outside.green() < 110)
        assert "verdict: anomalous here" in viewer.readout.text()
        qtbot.keyClick(viewer.view, Qt.Key.Key_Period)
        qtbot.waitUntil(lambda: viewer.shown_frame() == 26, timeout=5000)
        assert viewer.region_items == []  # the box belongs to frame 25 only

        # Play and pause keep the window responsive and move the cursor forward.
        qtbot.keyClick(viewer.view, Qt.Key.Key_Space)
        assert viewer.is_playing()
        qtbot.waitUntil(lambda: viewer.current_frame() >= 30, timeout=5000)
        qtbot.keyClick(viewer.view, Qt.Key.Key_Space)
        assert not viewer.is_playing()
        window.force_close = True
        window.close()


def test_ped2_folder_shows_its_ground_truth_and_frame_scores(qtbot, tmp_path, shared_data):
    frames = shared_data / "ucsd_ped2" / "testing" / "frames" / "02"
    window = _window(qtbot, tmp_path)
    assert window.open_project(tmp_path / "ped2.anomalens")
    _drop(window.case_browser, [frames])
    qtbot.waitUntil(lambda: window.case_browser.row_count() == 1, timeout=20000)
    case = window.store.cases()[0]
    assert case.metadata["ground_truth_frames"] == [[94, 179]]  # labels.csv: 02,95,180 (1-based)
    _select(qtbot, window, case.id)
    viewer = window.viewer_for("video")
    assert viewer.frame_count() == 180 and viewer.timeline.gt_ranges == [(94, 179)]
    viewer.seek(120)
    qtbot.waitUntil(lambda: viewer.shown_frame() == 120, timeout=5000)
    assert "ground truth: anomalous" in viewer.readout.text()
    painted = viewer.timeline.grab().toImage()
    amber = painted.pixelColor(round(viewer.timeline.x_for_frame(150)), 8)
    assert amber.red() > 200 and 120 < amber.green() < 190 and amber.blue() < 80
    scores = [0.2] * 90 + [0.8] * 90
    verdict = Verdict(
        case_id=case.id,
        source=VerdictSource.OFFLINE,
        anomalous=True,
        score=0.8,
        score_source=ScoreSource.OFFLINE_CALIBRATED,
        id=999,
        details={"frame_scores": scores, "heatmap_frame": 120},
    )
    viewer.show_verdict(verdict, np.ones((240, 360), np.float32))
    assert viewer.timeline.scores is not None and len(viewer.timeline.scores) == 180
    qtbot.waitUntil(lambda: viewer.shown_frame() == 120, timeout=5000)
    assert not viewer.heat_item.pixmap().isNull()  # the heat map sits on its own frame
    viewer.seek(10)
    qtbot.waitUntil(lambda: viewer.shown_frame() == 10, timeout=5000)
    assert viewer.heat_item.pixmap().isNull() and "score 0.20" in viewer.readout.text()
    window.force_close = True
    window.close()
