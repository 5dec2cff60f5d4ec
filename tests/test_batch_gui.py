"""Batch inspection from the window: progress in the status bar, cancel, resume, offline batches.

The model is the loopback OpenAI-compatible server on 127.0.0.1 (tests/loopback_vlm.py): a hosted
model cannot be reached from the test machine (no network, no API key).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from inspector.model import CaseStatus, Profile
from inspector.settings import AppSettings, EndpointSettings
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

ANSWER = json.dumps({"anomalous": False, "confidence": 0.9, "reason": "Even surface."})


def _window(qtbot, tmp_path, registry, cases: int) -> MainWindow:
    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.open_project(tmp_path / "p.anomalens")
    profile = window.store.save_profile(Profile(name="Disc", class_name="brake disc"))
    window.service.add_reference_array(profile.id, "ref", textured_image(50, (48, 64)))
    window._reload_profiles(profile.id)
    paths = []
    for seed in range(cases):
        path = tmp_path / f"part{seed}.png"
        Image.fromarray(textured_image(seed, (48, 64))).save(path)
        paths.append(str(path))
    window.add_case_files(paths)
    qtbot.waitUntil(lambda: window.case_browser.row_count() == cases, timeout=30000)
    return window


def test_batch_with_the_vlm_shows_progress_and_inspects_every_case(qtbot, tmp_path, registry):
    with LoopbackVLM(responder=lambda request: Reply(ANSWER, p_anomalous=0.1)) as server:
        window = _window(qtbot, tmp_path, registry, 6)
        window.app_settings.extra["prices"] = {"loopback-vlm": {"input_per_1k": 0.01, "output_per_1k": 0.03}}
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10))
        with qtbot.waitSignal(window.batch_finished, timeout=60000):
            window.inspect_selected()
        statuses = {c.status for c in window.store.cases()}
        assert statuses == {CaseStatus.NORMAL}
        label = window.batch_panel.label.text()
        assert "6/6 cases" in label and "tokens" in label and "$" in label and "unknown" not in label
        assert [window.case_browser.status_text(c.id) for c in window.store.cases()] == ["normal"] * 6
        assert len(server.chat_requests) == 6
        window.force_close = True
        window.close()


def test_cancelled_batch_resumes_where_it_stopped(qtbot, tmp_path, registry):
    with LoopbackVLM(responder=lambda request: Reply(ANSWER)) as server:
        window = _window(qtbot, tmp_path, registry, 8)
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        for _ in range(8):
            server.enqueue(delay_s=1.5, reply_text=ANSWER)
        with qtbot.waitSignal(window.batch_finished, timeout=30000):
            window.inspect_selected()
            qtbot.wait(300)
            window.batch_panel.cancel.click()
        assert window.store.unfinished_batches()
        pending = [c for c in window.store.cases() if c.status == CaseStatus.NOT_INSPECTED]
        assert pending
        with qtbot.waitSignal(window.batch_finished, timeout=60000):
            window.inspect_selected()  # no selection: the interrupted batch continues
        assert not window.store.unfinished_batches()
        assert {c.status for c in window.store.cases()} == {CaseStatus.NORMAL}
        window.force_close = True
        window.close()


def test_offline_batch_without_an_endpoint(qtbot, tmp_path, registry):
    window = _window(qtbot, tmp_path, registry, 2)
    with qtbot.waitSignal(window.batch_finished, timeout=120000):
        window.inspect_selected()
    assert all(c.status in (CaseStatus.NORMAL, CaseStatus.ANOMALOUS) for c in window.store.cases())
    assert "2/2 cases" in window.batch_panel.label.text()
    window.force_close = True
    window.close()


def test_a_b_comparison_runs_both_variants_and_opens_the_evaluation(qtbot, tmp_path, registry):
    from inspector.model import Decision
    from inspector.prompt import PromptSwitches
    from views.ab_dialog import Variant

    def answer(request) -> Reply:
        # variant A (with a reference image) answers well, variant B (zero-shot) calls everything normal
        images = sum(
            1
            for m in request["messages"]
            if isinstance(m["content"], list)
            for part in m["content"]
            if part.get("type") == "image_url"
        )
        good = images > 1
        return Reply(
            json.dumps({"anomalous": good, "confidence": 0.9 if good else 0.6, "reason": "r"}),
            p_anomalous=0.9 if good else 0.2,
        )

    with LoopbackVLM(responder=answer) as server:
        window = _window(qtbot, tmp_path, registry, 4)
        for case in window.store.cases():
            window.store.record_decision(Decision(case_id=case.id, label="anomalous"))
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10))
        variants = [
            Variant("loopback-vlm", PromptSwitches(max_references=1)),
            Variant("loopback-vlm", PromptSwitches(references=False, max_references=0)),
        ]
        with qtbot.waitSignal(window.evaluation_shown, timeout=60000):
            window.ab_comparison(variants)
        assert len(server.chat_requests) == 8
        dialog = window.evaluation_dialog
        assert dialog.grouping.currentText() == "prompt variant × model"
        rows = {dialog.table.item(r, 0).text(): dialog.table.item(r, 3).text() for r in range(dialog.table.rowCount())}
        with_refs = next(v for k, v in rows.items() if "1 shots" in k)
        zero_shot = next(v for k, v in rows.items() if "without references" in k)
        assert (with_refs, zero_shot) == ("1.000", "0.000")  # accuracy: A right on all four, B on none
        window.force_close = True
        window.close()
