"""The real VLM client (openai SDK over HTTP) against the loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import traceback
from typing import Any

import numpy as np
import pytest

from inspector.model import Profile, ScoreSource, View, ViewMap
from inspector.prompt import ComposedPrompt, PromptSwitches, compose
from inspector.settings import EndpointSettings
from inspector.vlm.answers import parse_answer
from inspector.vlm.client import VlmAnswer, VlmClient, VlmError
from tests.loopback_vlm import LoopbackVLM, Reply
from tests.loopback_vlm import loopback_vlm as _loopback_vlm_fixture  # noqa: F401 - registers the fixture

KEY = "sk-proj-SECRET0123456789abcdefXYZ"
MODEL = "loopback-vlm"


def _image(seed: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _prompt(query_size: tuple[int, int] = (48, 64), shots: int = 1, answer_format: bool = True) -> ComposedPrompt:
    profile = Profile(name="tiles", class_name="ceramic tile", normal_standards="Flat glaze, no cracks.")
    view = View("top", _image(0, query_size), ViewMap("pixel_scale", {"scale_x": 1.0, "scale_y": 1.0}))
    refs = [("ok_1", _image(1, (40, 30))), ("ok_2", _image(2, (30, 40)))]
    return compose(profile, [view], refs, switches=PromptSwitches(max_references=shots, answer_format=answer_format))


def _endpoint(server: LoopbackVLM, **overrides: Any) -> EndpointSettings:
    values: dict[str, Any] = {"base_url": server.base_url, "model": MODEL, "timeout_s": 10.0, **overrides}
    return EndpointSettings(**values)


def _ask(
    server: LoopbackVLM, prompt: ComposedPrompt | None = None, key: str | None = KEY, **endpoint: Any
) -> VlmAnswer:
    async def run() -> VlmAnswer:
        async with VlmClient(_endpoint(server, **endpoint), key) as client:
            return await client.ask(prompt or _prompt())

    return asyncio.run(run())


def _error(server: LoopbackVLM, **endpoint: Any) -> VlmError:
    with pytest.raises(VlmError) as info:
        _ask(server, **endpoint)
    return info.value


def test_images_arrive_as_data_urls_and_decode_to_the_sent_sizes(loopback_vlm: LoopbackVLM) -> None:
    prompt = _prompt(query_size=(1200, 1800), shots=2)
    _ask(loopback_vlm, prompt)
    (request,) = loopback_vlm.chat_requests
    assert request.status == 200
    assert request.image_sizes == [(30, 40), (40, 30), (1024, 683)]
    assert request.image_sizes == [(img.width, img.height) for img in prompt.images]
    assert request.image_formats == ["PNG"] * 3
    system, user = request.body["messages"]
    assert system == {"role": "system", "content": prompt.system}
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": prompt.text}
    assert [p["text"] for p in parts[1::2]] == [
        "Normal reference 1",  # never the reference's name (a file name can name a patient)
        "Normal reference 2",
        "Image to inspect: top",
    ]
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[2::2])


def test_request_parameters_follow_the_settings(loopback_vlm: LoopbackVLM) -> None:
    _ask(loopback_vlm, key=None, temperature=0.3, max_tokens=200)
    body = loopback_vlm.chat_requests[0].body
    assert body["model"] == MODEL
    assert body["temperature"] == 0.3 and body["max_tokens"] == 200
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    headers = {k.lower(): v for k, v in loopback_vlm.chat_requests[0].headers.items()}
    assert headers["authorization"] == "Bearer not-needed"  # local servers need no key
    _ask(loopback_vlm, request_logprobs=False)
    assert "logprobs" not in loopback_vlm.chat_requests[1].body


def test_answer_fields_and_logprob_score(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(
        reply_text='{"anomalous": true, "confidence": 0.6, "reason": "Crack at top left."}', p_anomalous=0.8
    )
    answer = _ask(loopback_vlm)
    assert answer.model == MODEL and answer.finish_reason == "stop"
    assert answer.prompt_tokens and answer.completion_tokens
    assert answer.latency_s > 0
    assert answer.response["object"] == "chat.completion"
    assert answer.logprobs and {"token", "logprob", "bytes", "top_logprobs"} <= set(answer.logprobs[0])
    parsed = parse_answer(answer.raw_text, answer.logprobs)
    assert parsed.anomalous is True
    assert parsed.score_source == ScoreSource.LOGPROB
    assert parsed.score == pytest.approx(0.8, abs=1e-6)


def test_without_logprobs_the_stated_confidence_is_the_score(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(reply_text='{"anomalous": false, "confidence": 0.7}')
    answer = _ask(loopback_vlm, request_logprobs=False)
    assert answer.logprobs is None
    parsed = parse_answer(answer.raw_text, answer.logprobs)
    assert parsed.score_source == ScoreSource.STATED_CONFIDENCE and parsed.score == pytest.approx(0.3)


def test_slow_reply_times_out(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(delay_s=3)
    error = _error(loopback_vlm, timeout_s=0.4)
    assert error.kind == "timeout" and error.retryable  # (how soon: benchmarks/timings.py)
    assert "0.4 s" in error.user_message


def test_cancelling_the_task_of_an_in_flight_request_returns_at_once(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(delay_s=5)

    async def run() -> None:
        async with VlmClient(_endpoint(loopback_vlm), KEY) as client:
            task = asyncio.create_task(client.ask(_prompt()))
            while not loopback_vlm.chat_requests:  # wait until the server holds the request
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())  # (how fast: benchmarks/timings.py)
    assert loopback_vlm.chat_requests[0].status == 0  # the server never answered it


def test_a_gui_thread_cancels_a_request_running_in_a_worker_loop(loopback_vlm: LoopbackVLM) -> None:
    """The pattern the Qt worker uses: a loop in a thread, the GUI thread cancels the future."""
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=loop.run_forever, daemon=True)
    worker.start()
    client = VlmClient(_endpoint(loopback_vlm), KEY)
    try:
        loopback_vlm.enqueue(delay_s=5)
        future = asyncio.run_coroutine_threadsafe(client.ask(_prompt()), loop)
        deadline = time.monotonic() + 5
        while not loopback_vlm.chat_requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.cancel()
        assert future.cancelled()
        # the worker loop is free again at once: the next request is answered normally, while the
        # server still holds the cancelled one (how fast: benchmarks/timings.py)
        answer = asyncio.run_coroutine_threadsafe(client.ask(_prompt()), loop).result(timeout=5)
        assert answer.raw_text
        assert loopback_vlm.chat_requests[0].status == 0
    finally:
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        worker.join(timeout=5)
        loop.close()


def test_concurrent_requests_are_served_in_parallel(loopback_vlm: LoopbackVLM) -> None:
    for _ in range(3):
        loopback_vlm.enqueue(delay_s=0.6)

    async def run() -> list[VlmAnswer]:
        async with VlmClient(_endpoint(loopback_vlm), KEY) as client:
            return await asyncio.gather(*(client.ask(_prompt()) for _ in range(3)))

    answers = asyncio.run(run())
    assert len(answers) == 3
    # all three were at the server before it answered any (total time: benchmarks/timings.py)
    requests = loopback_vlm.chat_requests
    assert max(r.received_at for r in requests) < min(r.replied_at for r in requests)


def test_server_error(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(status=500)
    error = _error(loopback_vlm)
    assert error.kind == "server_error" and error.status_code == 500 and error.retryable
    assert "HTTP 500" in error.user_message


def test_rate_limited_with_retry_after(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(status=429, retry_after="7")
    error = _error(loopback_vlm)
    assert error.kind == "rate_limited" and error.status_code == 429
    assert error.retry_after == 7.0 and error.retryable
    assert "7 s" in error.user_message


def test_rate_limited_with_an_http_date(loopback_vlm: LoopbackVLM) -> None:
    from email.utils import formatdate

    loopback_vlm.enqueue(status=429, retry_after=formatdate(time.time() + 30, usegmt=True))
    error = _error(loopback_vlm)
    assert error.kind == "rate_limited"
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


@pytest.mark.parametrize(
    "behaviour",
    [
        {"raw_body": "{not json"},
        {"raw_body": "<html>Bad gateway</html>", "content_type": "text/html"},
        {"raw_body": '{"id": "x", "object": "chat.completion"}'},
        {"raw_body": '{"choices": []}'},
        {"raw_body": '{"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}'},
        {"raw_body": b""},
    ],
)
def test_malformed_or_empty_body_is_a_bad_response(loopback_vlm: LoopbackVLM, behaviour: dict) -> None:
    loopback_vlm.enqueue(**behaviour)
    error = _error(loopback_vlm)
    assert error.kind == "bad_response" and not error.retryable


def test_answer_cut_off_by_the_token_limit(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(reply_text="", finish_reason="length")
    error = _error(loopback_vlm, max_tokens=16)
    assert error.kind == "bad_response"
    assert "16" in error.user_message and "token limit" in error.user_message


def test_wrong_key_is_auth_and_the_key_never_leaks() -> None:
    with LoopbackVLM(require_key="sk-the-right-one") as server:
        error = _error(server)  # the server echoes the wrong key in its error text, as OpenAI does
        assert error.kind == "auth" and error.status_code == 401 and not error.retryable
        _assert_no_key(error)


def test_server_text_is_passed_on_for_bad_requests_but_redacted(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(status=400, error_message=f"Invalid header value {KEY!r} for model")
    error = _error(loopback_vlm, request_logprobs=False)
    assert error.kind == "bad_request" and error.status_code == 400
    assert "Invalid header value" in error.user_message
    _assert_no_key(error)


def _assert_no_key(error: VlmError) -> None:
    formatted = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), error.user_message, formatted):
        assert KEY not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_client_repr_has_no_key(loopback_vlm: LoopbackVLM) -> None:
    client = VlmClient(_endpoint(loopback_vlm), KEY)
    assert KEY not in repr(client) and KEY not in str(vars(client).get("endpoint"))
    asyncio.run(client.aclose())


def test_rejected_logprobs_are_dropped_once_and_remembered() -> None:
    with LoopbackVLM(reject_logprobs=True) as server:

        async def run() -> tuple[VlmAnswer, VlmAnswer, bool]:
            async with VlmClient(_endpoint(server), None) as client:
                first = await client.ask(_prompt())
                second = await client.ask(_prompt())
                return first, second, client.logprobs_enabled

        first, second, enabled = asyncio.run(run())
        statuses = [r.status for r in server.chat_requests]
        assert statuses == [400, 200, 200]
        assert "logprobs" not in server.chat_requests[2].body
        assert not enabled and first.logprobs is None and second.raw_text


def test_an_unrelated_400_does_not_switch_logprobs_off(loopback_vlm: LoopbackVLM) -> None:
    for _ in range(2):
        loopback_vlm.enqueue(status=400, error_message="Image too large.")

    async def run() -> bool:
        async with VlmClient(_endpoint(loopback_vlm), None) as client:
            with pytest.raises(VlmError) as info:
                await client.ask(_prompt())
            assert info.value.kind == "bad_request" and "Image too large" in info.value.user_message
            return client.logprobs_enabled

    assert asyncio.run(run()) is True
    assert [r.body.get("logprobs") for r in loopback_vlm.chat_requests] == [True, None]


def test_max_tokens_is_renamed_when_the_server_asks_for_max_completion_tokens(loopback_vlm: LoopbackVLM) -> None:
    loopback_vlm.enqueue(
        status=400,
        error_message="Unsupported parameter: 'max_tokens' is not supported "
        "with this model. Use 'max_completion_tokens' instead.",
    )
    answer = _ask(loopback_vlm, max_tokens=99)
    assert answer.raw_text
    last = loopback_vlm.chat_requests[-1].body
    assert last["max_completion_tokens"] == 99 and "max_tokens" not in last
    assert last["logprobs"] is True
    assert answer.sent_params == {
        "model": MODEL,
        "temperature": 0.0,
        "max_completion_tokens": 99,
        "logprobs": True,
        "top_logprobs": 5,
        "response_format": "json_schema",
    }


def test_unknown_model_is_a_bad_request() -> None:
    with LoopbackVLM(strict_model=True) as server:
        error = _error(server, model="no-such-model", request_logprobs=False)
    assert error.kind == "bad_request" and error.status_code == 404
    assert "no-such-model" in error.user_message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_connection_error() -> None:
    endpoint = EndpointSettings(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model=MODEL, timeout_s=5)

    async def run() -> None:
        async with VlmClient(endpoint, KEY) as client:
            await client.ask(_prompt())

    with pytest.raises(VlmError) as info:
        asyncio.run(run())
    assert info.value.kind == "connection" and info.value.retryable
    assert "127.0.0.1" in info.value.user_message
    _assert_no_key(info.value)


def test_follow_up_question_continues_the_conversation(loopback_vlm: LoopbackVLM) -> None:
    async def run() -> None:
        async with VlmClient(_endpoint(loopback_vlm), KEY) as client:
            first_prompt = _prompt()
            first = await client.ask(first_prompt)
            history = [*client.build_messages(first_prompt), first.assistant_message()]
            follow_up = ComposedPrompt(
                system=first_prompt.system,
                text="Where exactly is the defect?",
                images=[],
                switches=first_prompt.switches,
                preset=first_prompt.preset,
                preset_version=first_prompt.preset_version,
                edited=True,
            )
            await client.ask(follow_up, history=history)

    asyncio.run(run())
    messages = loopback_vlm.chat_requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[3]["content"] == [{"type": "text", "text": "Where exactly is the defect?"}]
    assert len(loopback_vlm.chat_requests[1].image_sizes) == 2  # the first turn's images, resent


def test_list_models(loopback_vlm: LoopbackVLM) -> None:
    async def run() -> list[str]:
        async with VlmClient(_endpoint(loopback_vlm), None) as client:
            return await client.list_models()

    assert asyncio.run(run()) == [MODEL]


def test_custom_responder_sees_the_request() -> None:
    def responder(request: dict) -> Reply:
        n_images = sum(p.get("type") == "image_url" for p in request["messages"][1]["content"])
        return Reply(f"Anomalous. {n_images} images seen.", p_anomalous=0.65)

    with LoopbackVLM(responder=responder) as server:
        answer = _ask(server)
    assert answer.raw_text == "Anomalous. 2 images seen."
    assert parse_answer(answer.raw_text, answer.logprobs).score == pytest.approx(0.65, abs=1e-6)


def test_no_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="offline detector"):
        VlmClient(EndpointSettings())


def test_the_verdict_is_asked_through_json_schema_output(loopback_vlm: LoopbackVLM) -> None:
    """The loopback server checks the response_format shape as OpenAI's endpoint does."""
    _ask(loopback_vlm)
    sent = loopback_vlm.chat_requests[-1].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "anomaly_verdict"
    schema = sent["json_schema"]["schema"]
    assert schema["required"] == ["anomalous", "confidence", "reason"]
    assert {"regions", "marks", "ranges", "frames"} <= set(schema["properties"])


def test_a_server_without_json_schema_output_gets_free_text_requests() -> None:
    with LoopbackVLM(reject_response_format=True) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model=MODEL, timeout_s=10)

        async def twice():
            async with VlmClient(endpoint, KEY) as client:
                first = await client.ask(_prompt())
                second = await client.ask(_prompt())
            return first, second

        first, second = asyncio.run(twice())
        bodies = [r.body for r in server.chat_requests]
    assert first.raw_text and second.raw_text
    # OpenAI's form, then llama.cpp's json_object form, both refused; then free text, remembered
    assert [b.get("response_format", {}).get("type") for b in bodies] == ["json_schema", "json_object", None, None]
    assert "response_format" not in second.sent_params


def test_a_500_that_names_response_format_is_answered_with_the_json_object_form(loopback_vlm: LoopbackVLM) -> None:
    """llama-cpp-python's server refuses OpenAI's json_schema form with HTTP 500 (tests/test_real_server.py
    shows it on the real server); a retry would never help, the other form does."""
    loopback_vlm.enqueue(
        status=500,
        error_message="1 validation error for CreateChatCompletionRequest "
        "response_format: Input should be 'text' or 'json_object'",
    )
    answer = _ask(loopback_vlm)
    bodies = [r.body for r in loopback_vlm.chat_requests]
    assert [b["response_format"]["type"] for b in bodies] == ["json_schema", "json_object"]
    assert bodies[1]["response_format"]["schema"]["required"] == ["anomalous", "confidence", "reason"]
    assert answer.sent_params["response_format"] == "json_object"
    # a 500 about something else stays a (retryable) server error
    loopback_vlm.enqueue(status=500, error_message="The server had an error while processing your request.")
    error = _error(loopback_vlm)
    assert error.kind == "server_error" and error.retryable


def test_no_json_schema_when_switched_off_or_the_prompt_asks_for_free_text(loopback_vlm: LoopbackVLM) -> None:
    _ask(loopback_vlm, structured_output=False)
    assert "response_format" not in loopback_vlm.chat_requests[-1].body
    endpoint = EndpointSettings(base_url=loopback_vlm.base_url, model=MODEL, timeout_s=10)

    async def free_text():
        async with VlmClient(endpoint, KEY) as client:
            return await client.ask(_prompt(answer_format=False))

    asyncio.run(free_text())
    assert "response_format" not in loopback_vlm.chat_requests[-1].body
