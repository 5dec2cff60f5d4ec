"""The verdict-extraction turn, against the loopback OpenAI-compatible server with the real client.

A hosted model cannot be reached here; the loopback server (tests/loopback_vlm.py) is a real HTTP
server speaking the chat-completions protocol, scripted per request: the first request gets an
answer that states no verdict, the second (recognised by its JSON schema's name or its question)
gets the restated verdict.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from PIL import Image

from inspector.inspection import InspectionService
from inspector.model import ParseStatus, Profile, ScoreSource
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from inspector.vlm.batch import BatchLimits, Price, PriceTable, run_batch
from inspector.vlm.extraction import EXTRACTION
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply

UNREADABLE = (
    "The tile shows a fine grain texture with some darker patches near the upper edge. Whether "
    "these patches matter depends on the tolerance of the line."
)
REFUSAL = "I'm sorry, but I can't help with assessing this image."


@pytest.fixture
def project(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Tile", class_name="magnetic tile", normal_standards="Even grey."))
    cases = []
    for i in range(3):
        path = tmp_path / f"c{i}.png"
        Image.fromarray(textured_image(i, (40, 48))).save(path)
        cases.append(service.import_file(path, profile.id)[0])
    yield service, profile, cases, tmp_path / "p.anomalens"
    service.close()
    store.close()


def _is_extraction(request: dict) -> bool:
    schema = (request.get("response_format") or {}).get("json_schema") or {}
    last = request["messages"][-1]
    return schema.get("name") == "anomaly_verdict_restated" or (
        isinstance(last.get("content"), str) and "previous answer" in last["content"]
    )


def _scripted(first: str, restated: str | Reply):
    def responder(request: dict) -> str | Reply:
        return restated if _is_extraction(request) else first

    return responder


def _endpoint(server: LoopbackVLM, **kw) -> EndpointSettings:
    return EndpointSettings(base_url=server.base_url, model="loopback-vlm", api_key_env="", timeout_s=5, **kw)


def _inspect(service, profile, case, endpoint):
    prompt = service.compose_prompt(case, profile)
    return asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))


def test_unreadable_answer_gets_a_json_extraction_turn_and_its_verdict(project):
    service, profile, cases, path = project
    restated = Reply('{"verdict": "anomalous", "confidence": 0.8}', p_anomalous=0.85)
    with LoopbackVLM(responder=_scripted(UNREADABLE, restated)) as server:
        verdict = _inspect(service, profile, cases[0], _endpoint(server))
        first, second = server.chat_requests
    assert verdict.parse_status == ParseStatus.PARSED and verdict.anomalous is True
    # the score is the restated verdict token's probability, and the record says where it came from
    assert verdict.score_source == ScoreSource.EXTRACTION_LOGPROB
    assert verdict.score == pytest.approx(0.85, abs=0.02)
    assert verdict.details["extraction"]["used"] is True
    assert verdict.details["extraction"]["outcome"] == "used"
    assert "second turn" in verdict.explanation and UNREADABLE in verdict.explanation
    # the second request continues the same conversation: the images, the first answer, the question
    messages = second.body["messages"]
    assert messages[:2] == first.body["messages"][:2]
    assert second.image_sizes == first.image_sizes and second.image_sizes
    assert messages[2] == {"role": "assistant", "content": UNREADABLE}
    assert second.body["response_format"]["json_schema"]["schema"]["properties"]["verdict"]["enum"] == [
        "anomalous",
        "normal",
        "undetermined",
    ]
    # both turns are in the audit trail, and survive reopening the project
    service.store.close()
    reopened = ProjectStore(path)
    try:
        rows = reopened.answers(cases[0].id)
        assert [r.status for r in rows] == ["ok", EXTRACTION]
        params = rows[1].params
        assert params["extraction_of"] == rows[0].id and params["turn"] == EXTRACTION
        assert rows[1].prompt_tokens > 0 and json.loads(rows[1].raw_text)["verdict"] == "anomalous"
        stored = reopened.latest_verdict(cases[0].id)
        assert stored.details["extraction"]["answer_id"] == rows[1].id
        assert stored.anomalous is True and stored.score_source == ScoreSource.EXTRACTION_LOGPROB
        assert "extraction turn" in stored.raw_answer
    finally:
        reopened.close()


def test_a_refusal_stays_a_refusal_and_is_not_asked_again(project):
    service, profile, cases, _ = project
    with LoopbackVLM(responder=_scripted(REFUSAL, '{"verdict": "normal"}')) as server:
        verdict = _inspect(service, profile, cases[0], _endpoint(server))
        assert len(server.chat_requests) == 1
    assert verdict.parse_status == ParseStatus.UNPARSED and verdict.anomalous is None
    assert "declined" in verdict.explanation
    assert "extraction" not in verdict.details
    assert [r.status for r in service.store.answers(cases[0].id)] == ["ok"]


def test_an_undetermined_restatement_stays_unparsed(project):
    service, profile, cases, _ = project
    with LoopbackVLM(responder=_scripted(UNREADABLE, '{"verdict": "undetermined"}')) as server:
        verdict = _inspect(service, profile, cases[0], _endpoint(server))
        assert len(server.chat_requests) == 2
    assert verdict.parse_status == ParseStatus.UNPARSED and verdict.anomalous is None and verdict.score is None
    assert verdict.details["extraction"]["outcome"] == "undetermined"


def test_the_setting_turns_the_extraction_turn_off(project):
    service, profile, cases, _ = project
    with LoopbackVLM(responder=_scripted(UNREADABLE, '{"verdict": "normal"}')) as server:
        verdict = _inspect(service, profile, cases[0], _endpoint(server, extraction_turn=False))
        assert len(server.chat_requests) == 1
    assert verdict.parse_status == ParseStatus.UNPARSED and "extraction" not in verdict.details


def test_without_structured_output_the_turn_asks_for_one_word(project):
    service, profile, cases, _ = project
    with LoopbackVLM(
        responder=_scripted(UNREADABLE, Reply("Normal.", p_anomalous=0.2)), reject_response_format=True
    ) as server:
        verdict = _inspect(service, profile, cases[0], _endpoint(server))
        last = server.chat_requests[-1]
    assert "response_format" not in last.body
    assert "one word" in last.body["messages"][-1]["content"]
    assert verdict.parse_status == ParseStatus.PARSED and verdict.anomalous is False
    assert verdict.score_source == ScoreSource.EXTRACTION_LOGPROB and verdict.score == pytest.approx(0.2, abs=0.02)


def test_a_failed_extraction_turn_keeps_the_first_answer_unparsed(project):
    service, profile, cases, _ = project
    with LoopbackVLM(responder=_scripted(UNREADABLE, '{"verdict": "normal"}')) as server:
        endpoint = _endpoint(server)
        prompt = service.compose_prompt(cases[0], profile)

        async def run():
            return await service.inspect_with_vlm(cases[0], prompt, endpoint)

        server.enqueue(reply_text=UNREADABLE)
        server.enqueue(status=500)
        verdict = asyncio.run(run())
    assert verdict.parse_status == ParseStatus.UNPARSED
    assert verdict.details["extraction"]["outcome"] == "failed" and "500" in verdict.details["extraction"]["error"]
    rows = service.store.answers(cases[0].id)
    assert [r.status for r in rows] == ["ok", "error"]
    assert rows[1].params["turn"] == EXTRACTION


def test_batches_count_the_extraction_turns_tokens_and_cost(project):
    service, profile, cases, _ = project
    ids = [c.id for c in cases]
    prices = PriceTable({"loopback-vlm": Price(input_per_1k=0.5, output_per_1k=2.0)})
    server = LoopbackVLM(responder=_scripted(UNREADABLE, '{"verdict": "anomalous", "confidence": 0.7}')).start()
    try:
        progress = asyncio.run(
            run_batch(
                service,
                ids,
                lambda case: profile,
                _endpoint(server),
                BatchLimits(backoff_base_s=0.05, backoff_cap_s=0.2),
                api_key="k",
                prices=prices,
            )
        )
        assert len(server.chat_requests) == 2 * len(ids)
        # the same batch again is answered from the cache, extraction turns included: no request at all
        server.responder = _scripted(UNREADABLE, '{"verdict": "normal"}')
        again = asyncio.run(
            run_batch(service, ids, lambda case: profile, _endpoint(server), BatchLimits(), api_key="k", prices=prices)
        )
        assert len(server.chat_requests) == 2 * len(ids)
    finally:
        server.stop()
    assert again.cached == len(ids) and again.tokens_in == 0
    assert all(service.store.latest_verdict(i).anomalous is True for i in ids)
    rows = [row for i in ids for row in service.store.answers(i)[:2]]  # the first run: two turns per case
    assert sorted(r.status for r in rows) == sorted(["ok", EXTRACTION] * len(ids))
    tokens_in = sum(r.prompt_tokens for r in rows)
    tokens_out = sum(r.completion_tokens for r in rows)
    assert progress.requests == 2 * len(ids)
    assert (progress.tokens_in, progress.tokens_out) == (tokens_in, tokens_out)
    assert progress.cost == pytest.approx(tokens_in / 1000 * 0.5 + tokens_out / 1000 * 2.0)
    verdicts = [service.store.latest_verdict(i) for i in ids]
    assert all(v.anomalous is True and v.details["extraction"]["used"] for v in verdicts)


def _marked_case(service, profile, tmp_path):
    """A plate with a dark blot, large enough to carry Set-of-Mark marks, and its marked prompt."""
    from inspector.prompt import PromptSwitches

    image = textured_image(7, (300, 400))
    image[100:150, 240:300] = 25
    path = tmp_path / "plate.png"
    Image.fromarray(image).save(path)
    case = service.import_file(path, profile.id)[0]
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
    assert prompt.marks
    return case, prompt


def test_a_set_of_mark_answer_without_marks_gets_them_from_the_extraction_turn(project, tmp_path):
    service, profile, _, _ = project
    case, prompt = _marked_case(service, profile, tmp_path)
    first = "Anomalous. The tile has a dark blot near its right edge."
    restated = '{"verdict": "anomalous", "confidence": 0.9, "marks": [1]}'
    with LoopbackVLM(responder=_scripted(first, restated)) as server:
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, _endpoint(server)))
        question = server.chat_requests[-1].body["messages"][-1]["content"]
    assert '"marks"' in question
    assert verdict.anomalous is True and verdict.details["extraction"]["outcome"] == "agrees"
    assert [r.detail["mark"] for r in verdict.regions] == [1]
    # the first answer stays the verdict's basis (its leading word's log-probability is the score);
    # only the marks came from the second turn
    assert verdict.score_source == ScoreSource.LOGPROB


def test_a_restated_verdict_that_contradicts_the_first_reading_is_not_taken(project, tmp_path):
    service, profile, _, _ = project
    case, prompt = _marked_case(service, profile, tmp_path)
    first = "Anomalous. The tile has a dark blot near its right edge."
    with LoopbackVLM(responder=_scripted(first, '{"verdict": "normal", "marks": []}')) as server:
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, _endpoint(server)))
    assert verdict.parse_status == ParseStatus.UNPARSED and verdict.anomalous is None
    assert verdict.details["extraction"]["outcome"] == "contradicts"


def test_an_extraction_turn_asked_for_a_cached_answer_is_reused_next_time(project):
    """Batch 1 without the turn, batch 2 with it (the answer from the cache, the turn asked once),
    batch 3: nothing is asked again (found by review: the turn was filed under the copy)."""
    service, profile, cases, _ = project
    ids = [c.id for c in cases]
    server = LoopbackVLM(responder=_scripted(UNREADABLE, '{"verdict": "normal", "confidence": 0.6}')).start()
    try:

        def batch(turn: bool):
            return asyncio.run(
                run_batch(
                    service,
                    ids,
                    lambda case: profile,
                    _endpoint(server, extraction_turn=turn),
                    BatchLimits(),
                    api_key="k",
                )
            )

        batch(False)
        assert len(server.chat_requests) == len(ids)
        second = batch(True)
        assert len(server.chat_requests) == 2 * len(ids) and second.cached == len(ids)
        assert second.tokens_in > 0  # the turns asked now are paid for, though the answers were cached
        third = batch(True)
        assert len(server.chat_requests) == 2 * len(ids) and third.tokens_in == 0
    finally:
        server.stop()
    for i in ids:
        verdict = service.store.latest_verdict(i)
        assert verdict.anomalous is False and verdict.details["extraction"]["used"]
        replayed = [r for r in service.store.answers(i) if r.id == verdict.details["extraction"]["answer_id"]]
        assert replayed[0].status == "cached"  # the third run's turn came from the project, not the server


def test_marks_only_mentioned_in_an_anomalous_answer_are_asked_for(project, tmp_path):
    service, profile, _, _ = project
    case, prompt = _marked_case(service, profile, tmp_path)
    first = "Anomalous. See mark 1 near the right edge of the tile."
    with LoopbackVLM(responder=_scripted(first, '{"verdict": "anomalous", "marks": [1]}')) as server:
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, _endpoint(server)))
        assert len(server.chat_requests) == 2
    assert [r.detail["mark"] for r in verdict.regions] == [1]
    assert verdict.details["extraction"]["outcome"] == "agrees"


@pytest.mark.gui
def test_the_verdict_panel_names_refusals_and_restated_verdicts(qtbot):
    from inspector.model import Verdict, VerdictSource
    from views.verdict_panel import VerdictPanel

    panel = VerdictPanel()
    qtbot.addWidget(panel)
    refused = Verdict(
        case_id=1,
        source=VerdictSource.VLM,
        anomalous=None,
        score=None,
        score_source=ScoreSource.NONE,
        parse_status=ParseStatus.UNPARSED,
        model="m",
        details={"refused": True},
    )
    panel.show_verdict(refused)
    assert panel.badge.text() == "MODEL DECLINED"
    restated = Verdict(
        case_id=1,
        source=VerdictSource.VLM,
        anomalous=True,
        score=0.8,
        score_source=ScoreSource.EXTRACTION_LOGPROB,
        model="m",
        details={"extraction": {"used": True, "outcome": "used"}},
    )
    panel.show_verdict(restated)
    assert panel.badge.text() == "ANOMALOUS" and "extraction turn" in panel.source.text()
    assert "second turn" in panel.score_source.text()
