"""The real window, end to end, driven with pytest-qt on a (virtual) display.

A hosted VLM cannot be reached from the test machine (no network, no API key), so the VLM is the
loopback server from `tests/loopback_vlm.py`: a real HTTP server on 127.0.0.1 speaking the OpenAI
chat-completions protocol, which the app reaches through the real `openai` client.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

from inspector.model import CaseStatus, ParseStatus, VerdictSource
from inspector.settings import AppSettings, EndpointSettings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

ANOMALOUS_JSON = json.dumps(
    {"anomalous": True, "confidence": 0.8, "reason": "A dark scratch crosses the part.", "regions": []}
)


@pytest.fixture
def case_files(tmp_path) -> dict[str, Path]:
    files = {}
    for index in range(2):
        path = tmp_path / f"part_{index}.png"
        Image.fromarray(textured_image(10 + index, (120, 160))).save(path)
        files[f"good{index}"] = path
    reference = tmp_path / "reference.png"
    Image.fromarray(textured_image(3, (120, 160))).save(reference)
    files["reference"] = reference
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(files["good0"].read_bytes()[:300])
    files["truncated"] = truncated
    notes = tmp_path / "notes.docx"
    notes.write_bytes(b"PK\x03\x04 not an image")
    files["notes"] = notes
    return files


def _make_window(qtbot, tmp_path) -> MainWindow:
    window = MainWindow(AppSettings(), _registry(), settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    return window


def _registry():
    from inspector.plugins import discover

    return discover()


def _drop_files(widget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    widget.dropEvent(event)


def _select_and_wait(qtbot, window: MainWindow, case_id: int) -> None:
    qtbot.wait(10)  # let a pending auto-advance to the next case happen first
    with qtbot.waitSignal(window.case_shown, timeout=20000, check_params_cb=lambda shown: shown == case_id):
        window.case_browser.select_case(case_id)


def _inspect_and_wait(qtbot, window: MainWindow, timeout: int = 60000) -> None:
    with qtbot.waitSignal(window.inspection_finished, timeout=timeout):
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def _setup_project(qtbot, window: MainWindow, tmp_path: Path, case_files: dict[str, Path]) -> Path:
    project = tmp_path / "line3.anomalens"
    assert window.open_project(project)
    window.new_profile_dialog()
    dialog = window.profile_dialog
    dialog.name.setText("Brake disc")
    dialog.class_name.setText("brake disc")
    dialog.standards.setPlainText("Uniform machined surface with concentric turning marks.")
    dialog.defects.setPlainText("scratch\ncrack")
    _drop_files(dialog.references, [case_files["reference"]])
    qtbot.waitUntil(lambda: not dialog.adding and dialog.reference_count() == 1, timeout=30000)
    dialog.accept()
    assert window.profile_combo.currentText() == "Brake disc"
    paths = [case_files["good0"], case_files["good1"], case_files["truncated"], case_files["notes"]]
    _drop_files(window.case_browser, paths)
    qtbot.waitUntil(lambda: window.case_browser.row_count() == 4, timeout=20000)
    return project


def test_full_workflow_against_loopback_vlm(qtbot, tmp_path, case_files):
    verdicts = {"next": Reply(ANOMALOUS_JSON, p_anomalous=0.97)}

    def respond(request):
        reply = verdicts["next"]
        return reply(request) if callable(reply) else reply

    with LoopbackVLM(responder=respond) as server:
        window = _make_window(qtbot, tmp_path)
        project = _setup_project(qtbot, window, tmp_path, case_files)
        store = window.store
        cases = {c.name: c for c in store.cases()}

        # Bad files are in the list with a clear reason, and did not stop the good ones.
        assert cases["truncated.png"].status == CaseStatus.ERROR
        assert "truncated" in cases["truncated.png"].error
        assert "unsupported file type .docx" in cases["notes.docx"].error
        assert window.case_browser.status_text(cases["truncated.png"].id) == "error"
        assert "could not be read" in window.banner.label.text()

        # Selecting a case shows it in the image viewer and composes the prompt.
        good = cases["part_0.png"]
        _select_and_wait(qtbot, window, good.id)
        viewer = window.viewer_for("image")
        assert viewer.image_item.pixmap().width() == 160 and viewer.image_item.pixmap().height() == 120
        prompt_text = window.prompt_panel.text.toPlainText()
        assert "brake disc" in prompt_text and "concentric turning marks" in prompt_text
        assert window.prompt_panel.image_count() == 2  # one reference, one query

        # Inspect against the endpoint: data-URL images, verdict with a log-probability score.
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        _inspect_and_wait(qtbot, window)
        request = server.chat_requests[-1]
        assert request.image_sizes == [(160, 120), (160, 120)]
        assert request.body["logprobs"] is True
        assert window.verdict_panel.badge.text() == "ANOMALOUS"
        verdict = store.latest_verdict(good.id)
        assert verdict.source == VerdictSource.VLM and verdict.score_source.value == "logprob"
        assert verdict.score == pytest.approx(0.97, abs=0.02)
        assert "scratch" in window.verdict_panel.explanation.toPlainText()
        assert window.case_browser.status_text(good.id) == "anomalous"
        stored_prompt = store.prompt(verdict.prompt_id)
        assert "brake disc" in stored_prompt.user_text and len(stored_prompt.images) == 2

        # A slow reply: the window keeps processing events, and Esc cancels at once.
        server.enqueue(delay_s=8, reply_text=ANOMALOUS_JSON)
        ticks = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start(20)
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: len(server.chat_requests) == 2, timeout=10000)
        qtbot.wait(700)
        assert window.act_cancel.isEnabled()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
        # cancelled long before the 8-s reply (the latency itself: benchmarks/timings.py)
        qtbot.waitUntil(lambda: not window.act_cancel.isEnabled(), timeout=3000)
        timer.stop()
        assert len(ticks) >= 20  # the event loop kept running while the request was in flight
        assert "cancelled" in window.banner.label.text()
        assert len(store.verdicts(good.id)) == 1

        # A server error: a clear message, the earlier verdict and status stay.
        server.enqueue(status=500, error_message="The server had an error while processing your request.")
        _inspect_and_wait(qtbot, window)
        assert window.verdict_panel.badge.text() == "Inspection failed"
        assert "server" in window.verdict_panel.source.text().lower()
        assert window.case_browser.status_text(good.id) == "anomalous"
        assert [a.status for a in store.answers(good.id)][-1] == "error"

        # A nonsense answer is stored as unparsed, never guessed.
        second = cases["part_1.png"]
        _select_and_wait(qtbot, window, second.id)
        verdicts["next"] = Reply("The weather in the plant is lovely today.")
        _inspect_and_wait(qtbot, window)
        assert window.verdict_panel.badge.text() == "UNREADABLE ANSWER"
        assert store.latest_verdict(second.id).parse_status == ParseStatus.UNPARSED
        assert window.case_browser.status_text(second.id) == "unreadable answer"
        assert [a.status for a in store.answers(second.id)] == ["ok", "extraction"]  # asked once more, no luck

        # An answer that states no verdict gets one extraction turn; the panel says the verdict came from it.
        def restating(request):
            schema = (request.get("response_format") or {}).get("json_schema") or {}
            if schema.get("name") == "anomaly_verdict_restated":
                return Reply('{"verdict": "anomalous", "confidence": 0.75}', p_anomalous=0.8)
            return "The surface shows a darker band; whether it matters depends on the line's tolerance."

        verdicts["next"] = restating
        _inspect_and_wait(qtbot, window)
        assert window.verdict_panel.badge.text() == "ANOMALOUS"
        assert "extraction turn" in window.verdict_panel.source.text()
        assert "second turn" in window.verdict_panel.score_source.text()
        assert [a.status for a in store.answers(second.id)][-2:] == ["ok", "extraction"]

        # The operator decides with one key press; the decision is ground truth.
        qtbot.keyClick(window, Qt.Key.Key_A)
        assert store.latest_decision(second.id).label == "anomalous"
        assert window.case_browser.status_text(second.id) == "anomalous ✓"
        _select_and_wait(qtbot, window, good.id)
        qtbot.keyClick(window, Qt.Key.Key_N)
        assert store.latest_decision(good.id).label == "normal"

        window.force_close = True
        window.close()

    # Reopen: everything is there.
    reopened = _make_window(qtbot, tmp_path)
    assert reopened.open_project(project)
    assert reopened.case_browser.row_count() == 4
    assert reopened.case_browser.status_text(good.id) == "normal ✓"
    assert reopened.case_browser.status_text(second.id) == "anomalous ✓"
    _select_and_wait(qtbot, reopened, good.id)
    assert reopened.verdict_panel.badge.text() == "ANOMALOUS"
    assert "Operator decision: <b>normal</b>" in reopened.verdict_panel.decision.text()
    with ProjectStore(project) as check:
        answers = check.answers(good.id)
        assert [a.status for a in answers] == ["ok", "cancelled", "error"]
    reopened.force_close = True
    reopened.close()


def test_offline_detector_when_no_endpoint(qtbot, tmp_path, case_files):
    window = _make_window(qtbot, tmp_path)
    _setup_project(qtbot, window, tmp_path, case_files)
    assert "Offline detector" in window.endpoint_label.text()
    # Add a case with an obvious defect: a dark bar painted across the texture.
    damaged = textured_image(11, (120, 160))
    damaged[50:62, 20:140] = 5
    damaged_path = tmp_path / "damaged.png"
    Image.fromarray(damaged).save(damaged_path)
    window.add_case_files([str(damaged_path)])
    qtbot.waitUntil(lambda: window.case_browser.row_count() == 5, timeout=20000)
    store = window.store
    case = next(c for c in store.cases() if c.name == "damaged.png")
    _select_and_wait(qtbot, window, case.id)
    _inspect_and_wait(qtbot, window, timeout=180000)
    verdict = store.latest_verdict(case.id)
    assert verdict.source == VerdictSource.OFFLINE
    assert "no VLM was asked" in window.verdict_panel.source.text()
    assert verdict.score is not None and verdict.heatmap_sha256
    heat = window.service.heatmap(verdict)
    assert heat.shape == (120, 160)
    # The heat map is hottest on the painted bar, not elsewhere.
    assert heat[50:62, 20:140].mean() > heat[np.r_[0:35, 80:120]].mean()
    viewer = window.viewer_for("image")
    assert not viewer.heat_item.pixmap().isNull()
    window.force_close = True
    window.close()


def test_locked_project_is_reported_in_the_window(qtbot, tmp_path):
    import sqlite3

    path = tmp_path / "busy.anomalens"
    ProjectStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        window = _make_window(qtbot, tmp_path)
        assert not window.open_project(path)
        assert "locked by another program" in window.banner.label.text()
        assert window.store is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert window.open_project(path)
    window.force_close = True
    window.close()


def test_broken_plugin_is_reported_in_the_window_and_images_still_work(qtbot, tmp_path):
    from inspector.paths import bundled_plugins_dir
    from inspector.plugins import discover

    extra = tmp_path / "user_plugins"
    extra.mkdir()
    (extra / "bad_reader.py").write_text("def register(registry):\n    raise ImportError('needs libfoo 2.1')\n")
    registry = discover([bundled_plugins_dir(), extra])
    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    assert "bad_reader" in window.banner.label.text() and "needs libfoo 2.1" in window.banner.label.text()
    assert "image" in window.plugin_report() and "Skipped plugins" in window.plugin_report()
    assert window.open_project(tmp_path / "p.anomalens")
    path = tmp_path / "ok.png"
    Image.fromarray(textured_image(1, (30, 40))).save(path)
    window.add_case_files([str(path)])
    qtbot.waitUntil(lambda: window.case_browser.row_count() == 1, timeout=20000)
    assert window.store.cases()[0].status == CaseStatus.NOT_INSPECTED
    window.force_close = True
    window.close()
