"""A DICOM series in the real main window, inspected against the loopback VLM: the model is sent the
slice the operator scrolled to, windowed as shown, and its box comes back on that slice."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from inspector.model import CaseStatus
from inspector.settings import AppSettings, EndpointSettings
from plugins.dicom_modality.viewer import DicomViewer
from tests.loopback_vlm import LoopbackVLM, Reply
from tests.test_dicom_reader import PATIENT_NAME, write_ct_series
from tests.test_gui_workflow import _drop_files, _inspect_and_wait, _registry, _select_and_wait
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

CAPTION = "Image to inspect: "


def _answer_with_a_box(sent: dict):
    """Reply with a box on the (last) image to inspect, naming it by its caption as models do."""

    def respond(request: dict) -> Reply:
        captions = [
            part["text"]
            for message in request["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
            if part["type"] == "text" and part["text"].startswith(CAPTION)
        ]
        label = captions[-1][len(CAPTION) :]
        sent["label"] = label
        answer = {
            "anomalous": True,
            "confidence": 0.9,
            "reason": "A round hyperdense focus.",
            "regions": [{"view": label, "box": [96, 120, 192, 240], "label": "hyperdense focus"}],
        }
        return Reply(json.dumps(answer), p_anomalous=0.9)

    return respond


def _prompt_labels(window: MainWindow) -> list[str]:
    items = [window.prompt_panel.thumbnails.item(i).text() for i in range(window.prompt_panel.image_count())]
    return [text.split("\n", 1)[1] for text in items if text.startswith("query")]


def test_series_inspected_on_the_scrolled_slice_and_the_box_comes_back_there(qtbot, tmp_path):
    series = tmp_path / "head_ct"
    write_ct_series(series, n=12, size=(96, 128), lesion=(8,))
    not_dicom = tmp_path / "scan.dcm"
    not_dicom.write_bytes(b"exported report, not an image " * 20)
    sent: dict = {}
    with LoopbackVLM(responder=_answer_with_a_box(sent)) as server:
        window = MainWindow(AppSettings(), _registry(), settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        assert window.open_project(tmp_path / "ct.anomalens")
        window.new_profile_dialog()
        dialog = window.profile_dialog
        dialog.name.setText("Head CT")
        dialog.class_name.setText("non-contrast head CT")
        dialog.preset.setCurrentText("medical")
        dialog.accept()
        _drop_files(window.case_browser, [series, not_dicom])
        qtbot.waitUntil(lambda: window.case_browser.row_count() == 2, timeout=20000)
        cases = {c.name: c for c in window.store.cases()}
        assert cases["scan.dcm"].status == CaseStatus.ERROR and "not a DICOM file" in cases["scan.dcm"].error
        case = cases["head_ct"]
        assert case.modality == "dicom" and case.metadata["slices"] == 12

        _select_and_wait(qtbot, window, case.id)
        viewer = window.viewer_for("dicom")
        assert isinstance(viewer, DicomViewer) and viewer.current_slice == 6
        assert _prompt_labels(window) == ["slice 7/12, W 400 L 40"]
        assert PATIENT_NAME not in viewer.visible_tag_text()

        # The operator scrolls to slice 9 with the keyboard and picks the bone window.
        viewer.activateWindow()
        viewer.view.setFocus()
        qtbot.keyClick(viewer.view, Qt.Key.Key_Down)
        qtbot.keyClick(viewer.view, Qt.Key.Key_Down)
        viewer.choose_preset("CT bone")
        assert viewer.current_slice == 8
        qtbot.waitUntil(lambda: _prompt_labels(window) == ["slice 9/12, W 2000 L 500"], timeout=10000)

        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        _inspect_and_wait(qtbot, window)
        request = server.chat_requests[-1]
        assert sent["label"] == "slice 9/12, W 2000 L 500"
        assert request.image_sizes == [(384, 288)]  # 128 x 96 slice, enlarged 3x for the model
        assert PATIENT_NAME not in json.dumps(request.body) and "SYN-0042" not in json.dumps(request.body)
        assert window.verdict_panel.badge.text() == "ANOMALOUS"

        verdict = window.store.latest_verdict(case.id)
        (region,) = verdict.regions
        assert region.detail == {"slice": 8} and region.label == "hyperdense focus"
        assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((32, 40, 64, 80))
        assert viewer.visible_regions() == [region]
        _, rect = viewer.region_items[0]
        assert rect.rect().getCoords() == pytest.approx((32, 40, 64, 80))
        qtbot.keyClick(viewer.view, Qt.Key.Key_Up)
        assert viewer.current_slice == 7 and viewer.visible_regions() == []
        viewer.next_finding()
        assert viewer.current_slice == 8 and viewer.visible_regions() == [region]
        window.force_close = True
        window.close()
