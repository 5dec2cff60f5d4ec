"""The VLM client against a real third-party OpenAI-compatible server: llama.cpp, through llama-cpp-python.

tests/test_vlm_client.py checks the client against our own loopback server, which implements the
protocol as we read it. Here the other side is somebody else's implementation:
``python -m llama_cpp.server`` (FastAPI over llama.cpp) in a subprocess on 127.0.0.1, serving two
tiny, randomly initialised models built offline by tests/tiny_gguf.py:

* ``tiny-text``: a text-only "llama" model (2 layers, hidden size 64, byte-level BPE, ChatML);
* ``tiny-vlm``: the same model with a LLaVA-style vision projector, through llama-cpp-python's
  generic multimodal handler (libmtmd): each image becomes 16 image tokens.

The models know nothing; what is checked is the protocol: the messages (system, user content
parts, history) reach the chat template exactly (counted in tokens), a JSON schema becomes a
grammar the output obeys, log-probabilities come back in OpenAI's shape and line up with the
text, the token limit ends the answer with finish_reason "length", and images reach the image
encoder of a vision model and are dropped, silently, by a text-only one.

Known gap (see `test_the_client_gets_a_verdict_through_structured_output`): llama-cpp-python's
server accepts ``response_format`` only in its own form (``{"type": "json_object", "schema":
...}``) and answers OpenAI's ``{"type": "json_schema", ...}`` with HTTP 500, which the client
reports as a server failure instead of adapting.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' "
    "(it compiles llama.cpp; see tests/tiny_gguf.py)",
)
pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's [server] extra (fastapi, uvicorn) is missing")

import openai  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from inspector.model import ParseStatus, Profile, ScoreSource, View, ViewMap  # noqa: E402
from inspector.prompt import ComposedPrompt, PromptSwitches, compose  # noqa: E402
from inspector.settings import EndpointSettings  # noqa: E402
from inspector.vlm.answers import json_objects, parse_answer  # noqa: E402
from inspector.vlm.client import TOP_LOGPROBS, VERDICT_SCHEMA, VlmAnswer, VlmClient  # noqa: E402
from tests.tiny_gguf import CHATML_TEMPLATE, IMAGE_TOKENS, build_tiny_llama, build_tiny_mmproj  # noqa: E402

TEXT_MODEL = "tiny-text"
VISION_MODEL = "tiny-vlm"
MEDIA_MARKER = "<__media__>"  # what llama-cpp-python's multimodal handler puts where an image goes
STARTUP_TIMEOUT_S = 180.0


# -- the server ---------------------------------------------------------------------------------


class RealServer:
    def __init__(self, base_url: str, model_path: Path, log_path: Path) -> None:
        self.base_url = base_url
        self.model_path = model_path
        self.log_path = log_path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    folder = tmp_path_factory.mktemp("llama-cpp-server")
    model = build_tiny_llama(folder / "tiny-llama.gguf")
    mmproj = build_tiny_mmproj(folder / "tiny-mmproj.gguf")
    common = {"model": str(model), "n_ctx": 4096, "n_threads": 1, "n_threads_batch": 1, "verbose": False}
    port = _free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {**common, "model_alias": TEXT_MODEL},  # chat template from the GGUF file
            {**common, "model_alias": VISION_MODEL, "chat_format": "mtmd", "clip_model_path": str(mmproj)},
        ],
    }
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = folder / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{_log_tail(log_path)}")
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S:g} s:\n{_log_tail(log_path)}")
            time.sleep(0.25)
        yield RealServer(base_url, model, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def vocab(real_server: RealServer) -> Any:
    """The served model's tokenizer, loaded here (vocabulary only) to count prompt tokens."""
    return llama_cpp.Llama(model_path=str(real_server.model_path), vocab_only=True, verbose=False)


# -- helpers ------------------------------------------------------------------------------------


def _endpoint(server: RealServer, model: str = TEXT_MODEL, **overrides: Any) -> EndpointSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "model": model,
        "timeout_s": 120.0,
        "max_tokens": 24,
        **overrides,
    }
    return EndpointSettings(**values)


def _client_call(server: RealServer, call: str, *args: Any, model: str = TEXT_MODEL, **endpoint: Any) -> Any:
    async def run() -> Any:
        async with VlmClient(_endpoint(server, model, **endpoint)) as client:
            return await getattr(client, call)(*args)

    return asyncio.run(run())


def _sdk(server: RealServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=120.0)


def _image(seed: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _prompt(shots: int = 1, answer_format: bool = False) -> ComposedPrompt:
    profile = Profile(name="tiles", class_name="ceramic tile", normal_standards="Flat glaze, no cracks.")
    view = View("top", _image(0, (48, 64)), ViewMap("pixel_scale", {"scale_x": 1.0, "scale_y": 1.0}))
    refs = [("ok_1", _image(1, (40, 30))), ("ok_2", _image(2, (30, 40)))]
    return compose(profile, [view], refs, switches=PromptSwitches(max_references=shots, answer_format=answer_format))


def _render(messages: list[dict[str, Any]], image_text: str | None = None) -> str:
    """The prompt the server builds from `messages` with the model's chat template.

    `image_text`: what an image part becomes (the multimodal handler's marker); None: dropped.
    """
    if image_text is not None:
        messages = [
            {
                **m,
                "content": [
                    {"type": "text", "text": image_text} if p.get("type") == "image_url" else p for p in m["content"]
                ],
            }
            if isinstance(m["content"], list)
            else m
            for m in messages
        ]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(CHATML_TEMPLATE).render(messages=messages, add_generation_prompt=True)


def _count(vocab: Any, text: str) -> int:
    return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _check_schema(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """A small JSON-schema check (type, properties, required, items, minimum, maximum)."""
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        python = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
        ok = any(
            isinstance(value, python[t]) and not (t in ("integer", "number") and isinstance(value, bool))
            for t in allowed
        )
        assert ok, f"{where}: {value!r} is not of type {types}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: required key {key!r} is missing"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check_schema(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check_schema(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert value >= schema.get("minimum", -math.inf), f"{where}: {value} < minimum"
        assert value <= schema.get("maximum", math.inf), f"{where}: {value} > maximum"


def _check_logprobs(answer: VlmAnswer) -> None:
    """OpenAI's shape, one entry per generated token, and tokens that spell out the text."""
    assert answer.logprobs is not None, "no logprobs.content in the reply"
    assert len(answer.logprobs) == answer.completion_tokens
    for entry in answer.logprobs:
        assert {"token", "logprob", "bytes", "top_logprobs"} <= set(entry)
        assert isinstance(entry["token"], str) and entry["logprob"] <= 0.0
        top = entry["top_logprobs"]
        assert len(top) == TOP_LOGPROBS
        assert all({"token", "logprob"} <= set(t) and t["logprob"] <= 0.0 for t in top)
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    assert "".join(t["token"] for t in answer.logprobs) == answer.raw_text


# -- tests --------------------------------------------------------------------------------------


def test_the_server_lists_both_models(real_server: RealServer) -> None:
    assert set(_client_call(real_server, "list_models")) == {TEXT_MODEL, VISION_MODEL}


def test_a_text_conversation_arrives_as_sent_and_is_answered(real_server: RealServer, vocab: Any) -> None:
    messages = [
        {"role": "system", "content": "You inspect ceramic tiles."},
        {"role": "user", "content": [{"type": "text", "text": "Is the tile anomalous?"}]},
    ]
    answer: VlmAnswer = _client_call(real_server, "chat", messages)
    assert answer.response["object"] == "chat.completion"
    assert answer.raw_text and answer.raw_text == answer.response["choices"][0]["message"]["content"]
    assert answer.finish_reason in ("stop", "length")
    # the system text and the user's text part went through the model's chat template unchanged
    assert answer.prompt_tokens == _count(vocab, _render(messages))
    assert answer.completion_tokens and answer.completion_tokens <= 24
    # the SDK's typed reading of the same request agrees (temperature 0: greedy, deterministic)
    typed = _sdk(real_server).chat.completions.create(
        model=TEXT_MODEL, messages=messages, temperature=0.0, max_tokens=24
    )
    assert typed.choices[0].message.content == answer.raw_text
    assert typed.usage is not None and typed.usage.prompt_tokens == answer.prompt_tokens


def test_a_json_schema_makes_even_a_random_model_answer_valid_json(real_server: RealServer) -> None:
    """The server's own response_format dialect (json_object + schema): a grammar built from the schema."""
    sdk = _sdk(real_server)
    messages = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Is the tile anomalous?"}]
    reply = sdk.chat.completions.create(
        model=TEXT_MODEL,
        messages=messages,
        temperature=0.0,
        max_tokens=200,
        logprobs=True,
        top_logprobs=5,
        response_format={"type": "json_object", "schema": VERDICT_SCHEMA},  # type: ignore[arg-type, typeddict-unknown-key]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    text = choice.message.content or ""
    data = json.loads(text)
    _check_schema(data, VERDICT_SCHEMA)
    content = choice.logprobs.content if choice.logprobs else None
    logprobs = [t.model_dump() for t in content] if content else None
    assert logprobs and "".join(t["token"] for t in logprobs) == text
    parsed = parse_answer(text, logprobs)
    assert parsed.status == ParseStatus.PARSED and parsed.method == "json"
    assert isinstance(parsed.anomalous, bool) and parsed.anomalous is data["anomalous"]
    # the verdict token's log-probabilities are found in the real tokenization and give the score
    assert parsed.score_source == ScoreSource.LOGPROB and parsed.score is not None and 0.0 <= parsed.score <= 1.0
    # without the grammar the same model writes no JSON at all: the schema is what made it valid
    free = sdk.chat.completions.create(model=TEXT_MODEL, messages=messages, temperature=0.0, max_tokens=60)
    assert json_objects(free.choices[0].message.content or "") == []


def test_the_server_refuses_openais_json_schema_format_with_http_500(real_server: RealServer) -> None:
    """What the client meets: llama-cpp-python knows only {"type": "text" | "json_object"}."""
    with pytest.raises(openai.InternalServerError) as info:
        _sdk(real_server).chat.completions.create(
            model=TEXT_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "anomaly_verdict", "schema": VERDICT_SCHEMA},
            },
        )
    assert info.value.status_code == 500
    assert "response_format" in str(info.value.body)


def test_the_client_gets_a_verdict_through_structured_output(real_server: RealServer) -> None:
    """The server refuses OpenAI's json_schema form with a 500; the client then sends llama.cpp's own
    json_object+schema form and gets grammar-constrained JSON."""
    answer: VlmAnswer = _client_call(real_server, "ask", _prompt(answer_format=True), max_tokens=300)
    assert answer.sent_params["response_format"] == "json_object"
    data = json.loads(answer.raw_text)
    _check_schema(data, VERDICT_SCHEMA)
    parsed = parse_answer(answer.raw_text, answer.logprobs)
    assert parsed.status == ParseStatus.PARSED and isinstance(parsed.anomalous, bool)


def test_logprobs_come_back_in_openai_shape_and_spell_the_answer(real_server: RealServer) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the tile."}]}]
    answer: VlmAnswer = _client_call(real_server, "chat", messages, max_tokens=20)
    assert answer.sent_params["logprobs"] is True and answer.sent_params["top_logprobs"] == TOP_LOGPROBS
    _check_logprobs(answer)
    assert any(len(t["token"]) > 1 for t in answer.logprobs or []), "tokens, not characters, are expected"
    # turned off in the settings: not asked for, and none come back
    plain: VlmAnswer = _client_call(real_server, "chat", messages, max_tokens=20, request_logprobs=False)
    assert "logprobs" not in plain.sent_params and plain.logprobs is None
    assert plain.raw_text == answer.raw_text


def test_the_token_limit_cuts_the_answer_with_finish_reason_length(real_server: RealServer) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the tile at length."}]}]
    answer: VlmAnswer = _client_call(real_server, "chat", messages, max_tokens=7)
    assert answer.sent_params["max_tokens"] == 7
    assert answer.finish_reason == "length"
    assert answer.completion_tokens == 7
    _check_logprobs(answer)
    # cut-off JSON (the server's JSON mode, stopped by the limit) is never read as a verdict
    cut = _sdk(real_server).chat.completions.create(
        model=TEXT_MODEL,
        messages=messages,
        temperature=0.0,
        max_tokens=6,
        response_format={"type": "json_object", "schema": VERDICT_SCHEMA},  # type: ignore[arg-type, typeddict-unknown-key]
    )
    assert cut.choices[0].finish_reason == "length"
    assert parse_answer(cut.choices[0].message.content or "").status == ParseStatus.UNPARSED


def test_a_follow_up_question_carries_the_whole_conversation(real_server: RealServer, vocab: Any) -> None:
    prompt = _prompt(shots=0)
    first: VlmAnswer = _client_call(real_server, "ask", prompt)
    history = [{"role": "system", "content": prompt.system}, VlmClient.user_message(prompt), first.assistant_message()]
    follow_up = ComposedPrompt(
        system=prompt.system,
        text="Why?",
        images=[],
        switches=prompt.switches,
        preset=prompt.preset,
        preset_version=prompt.preset_version,
        edited=True,
    )

    async def ask_again() -> VlmAnswer:
        async with VlmClient(_endpoint(real_server)) as client:
            return await client.ask(follow_up, history=history)

    second = asyncio.run(ask_again())
    messages = [*history, VlmClient.user_message(follow_up)]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    # every turn reached the template: system, the first question, the model's answer, "Why?"
    assert second.prompt_tokens == _count(vocab, _render(messages))
    assert second.prompt_tokens > (first.prompt_tokens or 0) + (first.completion_tokens or 0)
    assert second.raw_text
    # the same conversation sent whole (chat) is the same request
    again: VlmAnswer = _client_call(real_server, "chat", messages)
    assert again.prompt_tokens == second.prompt_tokens and again.raw_text == second.raw_text


def test_a_text_only_model_drops_images_silently(real_server: RealServer, vocab: Any) -> None:
    """No error: the image parts are simply not in the prompt. The client cannot tell; the operator must
    choose a vision model."""
    prompt = _prompt(shots=2)
    assert len(prompt.images) == 3
    answer: VlmAnswer = _client_call(real_server, "ask", prompt)
    messages = [{"role": "system", "content": prompt.system}, VlmClient.user_message(prompt)]
    assert answer.prompt_tokens == _count(vocab, _render(messages))  # captions in, images out
    assert answer.raw_text


def test_a_vision_model_encodes_every_image(real_server: RealServer, vocab: Any) -> None:
    """Through libmtmd and the random vision projector, each image becomes IMAGE_TOKENS prompt tokens."""
    counts = {}
    for shots in (0, 2):
        prompt = _prompt(shots=shots)
        answer: VlmAnswer = _client_call(real_server, "ask", prompt, model=VISION_MODEL)
        assert answer.raw_text and answer.finish_reason in ("stop", "length")
        _check_logprobs(answer)
        messages = [{"role": "system", "content": prompt.system}, VlmClient.user_message(prompt)]
        pieces = _render(messages, image_text=MEDIA_MARKER).split(MEDIA_MARKER)
        text_tokens = sum(_count(vocab, piece) for piece in pieces)
        assert answer.prompt_tokens == text_tokens + IMAGE_TOKENS * len(prompt.images)
        counts[len(prompt.images)] = answer.prompt_tokens
    assert set(counts) == {1, 3}


def test_the_extraction_turn_through_the_real_server(real_server: RealServer, tmp_path: Path, registry: Any) -> None:
    """The whole extraction turn against llama.cpp: an unreadable first answer, then the restated verdict
    through the server's structured output, both stored. The random model cannot judge anything; what
    is proven is the protocol (the second turn's JSON follows the extraction schema and is read)."""
    from PIL import Image

    from inspector.inspection import InspectionService
    from inspector.store import ProjectStore
    from inspector.vlm.extraction import EXTRACTION, EXTRACTION_SCHEMA

    store = ProjectStore(tmp_path / "real.anomalens")
    service = InspectionService(store, registry)
    try:
        profile = store.save_profile(Profile(name="tiles", class_name="ceramic tile"))
        path = tmp_path / "tile.png"
        Image.fromarray(_image(3, (48, 64))).save(path)
        case = service.import_file(path, profile.id)[0]
        prompt = service.compose_prompt(case, profile, PromptSwitches(references=False, answer_format=False))
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, _endpoint(real_server, max_tokens=120)))
        rows = store.answers(case.id)
        if rows[0].status == "ok" and len(rows) == 1:
            pytest.skip("the random model's first answer happened to be readable: no extraction turn to test")
        assert [r.status for r in rows] == ["ok", EXTRACTION]
        restated = json.loads(rows[1].raw_text)
        _check_schema(restated, EXTRACTION_SCHEMA)
        assert restated["verdict"] in ("anomalous", "normal", "undetermined")
        expected = {"anomalous": True, "normal": False, "undetermined": None}[restated["verdict"]]
        assert verdict.anomalous is expected
        assert verdict.details["extraction"]["answer_id"] == rows[1].id
    finally:
        service.close()
        store.close()
