"""A sensor series in the real window: drop it, see it in the pyqtgraph viewer, ask the loopback VLM,
and check that the range the model answers (in the plot's time units) lands on the right samples
and is drawn in the viewer; then narrow the view with a range selection and ask again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from inspector.settings import AppSettings, EndpointSettings
from tests.loopback_vlm import LoopbackVLM, Reply
from views.main_window import MainWindow

pytestmark = pytest.mark.gui


def _series_csv(path: Path) -> Path:
    rng = np.random.default_rng(5)
    t = np.arange(600)
    values = 20 + 3 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.2, t.size)
    values[400:403] += 15
    stamps = np.datetime64("2024-03-01T00:00") + t * np.timedelta64(10, "m")
    lines = ["timestamp,coolant_c"] + [
        f"{str(s).replace('T', ' ')},{v:.3f}" for s, v in zip(stamps, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _drop(widget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    widget.dropEvent(
        QDropEvent(
            QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
        )
    )


def _inspect(qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.inspection_finished, timeout=30000):
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_series_inspected_against_loopback_vlm(qtbot, tmp_path):
    from inspector.plugins import discover
    from plugins.timeseries_modality.viewer import TimeSeriesViewer

    series_path = _series_csv(tmp_path / "coolant.csv")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    replies = {
        "next": json.dumps(
            {
                "anomalous": True,
                "confidence": 0.9,
                "reason": "A short overheating spike.",
                "ranges": [["2024-03-03 18:40", "2024-03-03 19:00"]],
            }
        )
    }
    with LoopbackVLM(responder=lambda request: Reply(replies["next"])) as server:
        window = MainWindow(AppSettings(), discover(), settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        assert window.open_project(tmp_path / "line.anomalens")
        window.new_profile_dialog()
        dialog = window.profile_dialog
        dialog.name.setText("Coolant loop")
        dialog.class_name.setText("coolant temperature")
        dialog.preset.setCurrentText("time_series")
        dialog.accept()
        _drop(window.case_browser, [series_path, garbage])
        qtbot.waitUntil(lambda: window.case_browser.row_count() == 2, timeout=20000)
        cases = {c.name: c for c in window.store.cases()}
        assert "binary data" in cases["garbage.csv"].error
        case = cases["coolant.csv"]
        assert case.modality == "time_series" and case.metadata["length"] == 600

        qtbot.wait(10)
        with qtbot.waitSignal(window.case_shown, timeout=20000, check_params_cb=lambda shown: shown == case.id):
            window.case_browser.select_case(case.id)
        viewer = window.viewer_for("time_series")
        assert isinstance(viewer, TimeSeriesViewer)
        assert len(viewer.curves) == 1 and viewer.curves[0].getOriginalDataset()[0].size == 600
        assert viewer.render_options() == {}  # the whole series, as the prompt's default render
        assert window.prompt_panel.image_count() == 1
        assert "samples 0-599" in window.prompt_panel.thumbnails.item(0).text()

        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        _inspect(qtbot, window)
        request = server.chat_requests[-1]
        assert request.image_sizes[0][0] == 1024
        assert "units of the x axis" in json.dumps(request.body)
        verdict = window.store.latest_verdict(case.id)
        assert verdict.anomalous and len(verdict.regions) == 1
        detail = verdict.regions[0].detail
        assert detail["samples"] == [400, 402]
        assert detail["times"] == ["2024-03-03 18:40:00", "2024-03-03 19:00:00"]
        assert window.verdict_panel.badge.text() == "ANOMALOUS"
        # the viewer draws that range where those samples are
        x = viewer.curves[0].getOriginalDataset()[0]
        assert len(viewer.verdict_spans) == 1
        a, b = viewer.verdict_spans[0]
        assert x[399] < a < x[400] and x[402] < b < x[403]
        drawn = [item for item in viewer.verdict_items if hasattr(item, "getRegion")]
        assert drawn and all(item.isVisible() for item in drawn)
        assert drawn[0].getRegion() == pytest.approx((a, b))
        viewer.move_cursor(float(x[401]))
        assert "sample 401" in viewer.readout.text() and "2024-03-03 18:50:00" in viewer.readout.text()

        # A range selection narrows what the model sees; answers outside it are not placed.
        viewer.select_samples(300, 450)
        assert viewer.render_options() == {"window": [300, 450]}
        qtbot.waitUntil(
            lambda: (
                window.prompt_panel.thumbnails.count() == 1
                and "samples 300-450" in window.prompt_panel.thumbnails.item(0).text()
            ),
            timeout=10000,
        )
        replies["next"] = json.dumps(
            {
                "anomalous": True,
                "confidence": 0.8,
                "reason": "Spike.",
                "ranges": [["2024-03-03 18:30", "2024-03-03 19:10"], ["2024-03-01 01:00", "2024-03-01 02:00"]],
            }
        )
        _inspect(qtbot, window)
        verdict = window.store.latest_verdict(case.id)
        assert [r.detail["samples"] for r in verdict.regions] == [[399, 403]]
        assert len(viewer.verdict_spans) == 1
        window.force_close = True
        window.close()


def test_viewer_shows_nab_labels_scores_and_emits_selection(qtbot, shared_data):
    from inspector.model import ScoreSource, Verdict, VerdictSource
    from inspector.plugins import OfflineContext, discover
    from plugins.timeseries_modality.viewer import TimeSeriesViewer

    plugin = discover().modality("time_series")
    loaded = plugin.read(shared_data / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv")
    viewer = TimeSeriesViewer()
    qtbot.addWidget(viewer)
    viewer.resize(900, 500)
    viewer.show()
    viewer.show_case(loaded, TimeSeriesViewer.prepare_display(loaded))
    shaded = [item for item in viewer.label_items if hasattr(item, "getRegion")]
    assert len(shaded) == 5  # NAB's five windows for this file, one plot
    x = loaded.data.time
    first = loaded.data.labels[0]
    assert x[first.start - 1] < shaded[0].getRegion()[0] < x[first.start]
    assert "Known anomaly window 1: 2014-10-30 15:30:00" in shaded[0].toolTip()
    viewer.action_labels.setChecked(False)
    assert not any(item.isVisible() for item in viewer.label_items)

    outcome = plugin.offline_detect(
        loaded,
        OfflineContext(
            references=list, image_detector=lambda: None, progress=lambda f: None, is_cancelled=lambda: False
        ),
    )
    verdict = Verdict(
        case_id=1,
        source=VerdictSource.OFFLINE,
        anomalous=outcome.anomalous,
        score=outcome.score,
        score_source=ScoreSource.OFFLINE_CALIBRATED,
        regions=outcome.regions,
        details=outcome.details,
    )
    viewer.show_verdict(verdict, None)
    assert viewer.score_plot is not None and viewer.score_curve.getOriginalDataset()[1].size == loaded.data.length
    assert len(viewer.verdict_spans) == len(outcome.regions) > 0
    with qtbot.waitActive(viewer):
        viewer.activateWindow()
    viewer.graphics.setFocus()
    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        qtbot.keyClick(viewer.graphics, Qt.Key.Key_S)  # the range-selection shortcut
    window = viewer.render_options()["window"]
    assert 0 < window[0] < window[1] < loaded.data.length - 1
    viewer.show_verdict(None, None)
    assert viewer.score_plot is None and not viewer.verdict_items


def test_day_ticks_name_the_month(qapp):
    import datetime as dt

    from pyqtgraph.graphicsItems.DateAxisItem import MONTH_DAY_ZOOM_LEVEL

    from plugins.timeseries_modality.viewer import ReadableDateAxis

    axis = ReadableDateAxis(orientation="bottom", utcOffset=0)
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()
    axis.zoomLevel = MONTH_DAY_ZOOM_LEVEL  # what pyqtgraph picks for a two-week span
    day = 86400.0
    spec = next(s for s in axis.zoomLevel.tickSpecs if s.format == "%d")
    assert axis.tickStrings([start, start + day], 1.0, spec.spacing) == ["02 Mar", "03 Mar"]
