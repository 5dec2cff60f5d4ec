"""Follow-up questions on a verdict, through the real openai client.

The model is the loopback OpenAI-compatible server on 127.0.0.1 (tests/loopback_vlm.py): a hosted
model cannot be reached from the test machine (no network, no API key).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from PIL import Image

from inspector.chat import ChatError, ask_followup, conversation
from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply

VERDICT = json.dumps({"anomalous": True, "confidence": 0.8, "reason": "A dark scratch crosses the part."})


def _texts(request) -> list[tuple[str, str]]:
    """(role, text) of each message; image parts are counted, not shown."""
    out = []
    for message in request.body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], content))
        else:
            images = sum(1 for part in content if part.get("type") == "image_url")
            out.append((message["role"], f"[{images} images] " + content[0]["text"]))
    return out


@pytest.fixture
def inspected(tmp_path, registry):
    path = tmp_path / "part.png"
    Image.fromarray(textured_image(4, (64, 80))).save(path)
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Disc", class_name="brake disc"))
    case, _ = service.import_file(path, profile.id)
    replies = iter(
        [
            VERDICT,
            "The scratch runs from the top left to the centre, about 30 px long.",
            "It is most likely a handling mark, not a crack: the edges are smooth.",
        ]
    )
    server = LoopbackVLM(responder=lambda request: Reply(next(replies))).start()
    endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
    verdict = asyncio.run(service.inspect_with_vlm(case, service.compose_prompt(case, profile), endpoint))
    yield store, service, case, verdict, endpoint, server
    server.stop()
    service.close()
    store.close()


def test_follow_ups_carry_the_images_the_first_answer_and_the_earlier_turns(inspected):
    store, _, case, verdict, endpoint, server = inspected
    first = asyncio.run(ask_followup(store, case, verdict, "Where exactly is the scratch?", endpoint))
    second = asyncio.run(ask_followup(store, case, verdict, "Could it be a crack?", endpoint))
    assert first.answer.startswith("The scratch runs") and second.answer.startswith("It is most likely")
    assert "response_format" in server.chat_requests[0].body  # the verdict: JSON schema output
    assert "response_format" not in server.chat_requests[-1].body  # a follow-up: free text
    messages = _texts(server.chat_requests[-1])
    roles = [role for role, _ in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1][1].startswith("[1 images]")  # the case image, sent again
    assert json.loads(messages[2][1])["reason"] == "A dark scratch crosses the part."
    assert messages[3][1] == "Where exactly is the scratch?" and messages[5][1] == "Could it be a crack?"
    assert [t.question for t in conversation(store, verdict)] == [
        "Where exactly is the scratch?",
        "Could it be a crack?",
    ]


def test_a_follow_up_after_an_extraction_turn_carries_that_turn(tmp_path, registry):
    """The model sees its first answer, the extraction question and its restated verdict, as they were."""
    path = tmp_path / "part.png"
    Image.fromarray(textured_image(5, (64, 80))).save(path)
    store = ProjectStore(tmp_path / "x.anomalens")
    service = InspectionService(store, registry)
    first = "The disc shows a darker band near the rim; whether it matters depends on the tolerance."
    replies = iter([first, '{"verdict": "anomalous", "confidence": 0.7}', "The band is about 5 mm wide."])
    try:
        profile = store.save_profile(Profile(name="Disc", class_name="brake disc"))
        case, _ = service.import_file(path, profile.id)
        with LoopbackVLM(responder=lambda request: Reply(next(replies))) as server:
            endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
            verdict = asyncio.run(service.inspect_with_vlm(case, service.compose_prompt(case, profile), endpoint))
            assert verdict.details["extraction"]["used"]
            asyncio.run(ask_followup(store, case, verdict, "How wide is the band?", endpoint))
            texts = _texts(server.chat_requests[-1])
        assert [role for role, _ in texts] == ["system", "user", "assistant", "user", "assistant", "user"]
        assert texts[2] == ("assistant", first)  # the answer as given, not the verdict's joined record
        assert "previous answer" in texts[3][1] and '"verdict": "anomalous"' in texts[4][1]
        assert texts[5] == ("user", "How wide is the band?")
    finally:
        service.close()
        store.close()


def test_conversation_survives_reopening_the_project(inspected, tmp_path):
    store, _, case, verdict, endpoint, _ = inspected
    asyncio.run(ask_followup(store, case, verdict, "Where exactly is the scratch?", endpoint))
    with ProjectStore(tmp_path / "p.anomalens", create=False) as again:
        turns = conversation(again, again.latest_verdict(case.id))
    assert [(t.question, t.model) for t in turns] == [("Where exactly is the scratch?", "loopback-vlm")]
    # follow-ups do not replace the verdict, and the original answer stays the first one
    assert store.latest_verdict(case.id).id == verdict.id


def test_failed_follow_up_is_stored_with_its_reason_and_left_out_of_the_next_request(inspected):
    store, _, case, verdict, endpoint, server = inspected
    server.enqueue(status=500, error_message="The server had an error while processing your request.")
    with pytest.raises(ChatError):
        asyncio.run(ask_followup(store, case, verdict, "Where?", endpoint))
    turns = conversation(store, verdict)
    assert len(turns) == 1 and turns[0].error and turns[0].answer == ""
    asyncio.run(ask_followup(store, case, verdict, "Where exactly is the scratch?", endpoint))
    roles = [role for role, _ in _texts(server.chat_requests[-1])]
    assert roles == ["system", "user", "assistant", "user"]  # the failed turn is not replayed


def test_follow_ups_need_a_vlm_verdict_an_endpoint_and_a_question(inspected, registry):
    store, service, case, verdict, endpoint, _ = inspected
    with pytest.raises(ChatError, match="Type a question"):
        asyncio.run(ask_followup(store, case, verdict, "   ", endpoint))
    with pytest.raises(ChatError, match="endpoint"):
        asyncio.run(ask_followup(store, case, verdict, "Why?", EndpointSettings()))
    profile = store.save_profile(Profile(name="p2"))
    service.add_reference_array(profile.id, "ref", textured_image(5, (64, 80)))
    offline = service.inspect_offline(case, profile)
    with pytest.raises(ChatError, match="offline detector"):
        asyncio.run(ask_followup(store, case, offline, "Why?", endpoint))


@pytest.mark.gui
def test_follow_up_tab_in_the_window(qtbot, tmp_path, registry):
    from PySide6.QtCore import Qt

    from inspector.settings import AppSettings
    from views.main_window import MainWindow

    path = tmp_path / "part.png"
    Image.fromarray(textured_image(4, (64, 80))).save(path)
    replies = iter([VERDICT, "About 30 px long, from the top left to the centre."])
    with LoopbackVLM(responder=lambda request: Reply(next(replies))) as server:
        window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        assert window.open_project(tmp_path / "p.anomalens")
        window.store.save_profile(Profile(name="Disc", class_name="brake disc"))
        window._reload_profiles()
        window.add_case_files([str(path)])
        qtbot.waitUntil(lambda: window.case_browser.row_count() == 1, timeout=20000)
        case = window.store.cases()[0]
        with qtbot.waitSignal(window.case_shown, timeout=20000):
            window.case_browser.select_case(case.id)
        chat = window.verdict_panel.chat
        assert not chat.question.isEnabled()  # no VLM verdict yet
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10))
        with qtbot.waitSignal(window.inspection_finished, timeout=30000):
            window.inspect_current()
        assert chat.question.isEnabled()
        qtbot.keyClicks(chat.question, "How long is the scratch?")
        with qtbot.waitSignal(window.followup_finished, timeout=30000):
            qtbot.keyClick(chat.question, Qt.Key.Key_Return)
        text = chat.transcript.toPlainText()
        assert "How long is the scratch?" in text and "About 30 px long" in text
        assert chat.question.text() == ""
        # shown again later: the conversation comes back from the project file
        window._current = None
        with qtbot.waitSignal(window.case_shown, timeout=20000):
            window.show_case(case.id)
        assert "About 30 px long" in chat.transcript.toPlainText()
        window.force_close = True
        window.close()
