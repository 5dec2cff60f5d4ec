"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

A hosted model cannot be reached from the test machine (no network, no API keys), so the real
client is exercised against this server instead: a real HTTP server on 127.0.0.1 (a free port,
background threads, concurrent requests) that speaks the same protocol as the OpenAI API and the
OpenAI-compatible servers the workstation targets (vLLM, Ollama, LM Studio):

* ``POST /v1/chat/completions`` validates the request as the real API does (model, messages,
  content parts, ``image_url.url`` must be a ``data:image/...;base64,`` URL that decodes to a
  real PNG/JPEG/WebP/GIF) and answers 400 with an OpenAI-style error body otherwise. The reply
  has the exact ``chat.completion`` shape, with ``logprobs.content[*].{token, logprob, bytes,
  top_logprobs}`` when ``logprobs`` is requested.
* ``GET /v1/models`` lists the served model(s).

Behaviour is scriptable: `responder` (request dict → reply text, or a `Reply`) answers by
default; `enqueue(...)` queues one-off behaviours (delay, HTTP status with Retry-After,
malformed body, a fixed reply) consumed in order. Every request is recorded with its decoded
image sizes for assertions.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest
from PIL import Image

DEFAULT_REPLY = '{"anomalous": false, "confidence": 0.9, "reason": "No visible defects.", "regions": []}'
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|webp|gif);base64,(.*)$", re.DOTALL)
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_POSITIVE = {"true", "anomalous", "yes", "abnormal"}
_NEGATIVE = {"false", "normal", "no"}
_OPPOSITE = {
    "true": "false",
    "false": "true",
    "anomalous": "normal",
    "normal": "anomalous",
    "yes": "no",
    "no": "yes",
    "abnormal": "normal",
}


@dataclass
class Reply:
    """A scripted reply. `p_anomalous` sets the log-probabilities of verdict tokens."""

    text: str
    p_anomalous: float | None = None
    finish_reason: str = "stop"


@dataclass
class Behaviour:
    """A one-off behaviour for the next request (queued with `LoopbackVLM.enqueue`)."""

    delay_s: float = 0.0
    status: int | None = None  # e.g. 500, 429, 401
    retry_after: str | None = None  # Retry-After header value
    error_message: str | None = None
    raw_body: bytes | str | None = None  # sent as-is with status 200 (malformed responses)
    content_type: str = "application/json"
    reply_text: str | None = None
    p_anomalous: float | None = None
    finish_reason: str = "stop"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height), in order
    image_formats: list[str] = field(default_factory=list)
    status: int = 0  # 0 while the request is in flight (e.g. delayed)
    error: str | None = None
    received_at: float = field(default_factory=time.monotonic)
    replied_at: float | None = None  # when the server began to answer (after any scripted delay)


class _RequestError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.error_type = (status, message, param, code, error_type)


def error_body(
    message: str, error_type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body shaped like the OpenAI API's."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class LoopbackVLM:
    """The server. Use as a context manager, or call `start()` / `stop()`."""

    def __init__(
        self,
        responder: Callable[[dict[str, Any]], str | Reply] | None = None,
        models: tuple[str, ...] = ("loopback-vlm",),
        require_key: str | None = None,
        reject_logprobs: bool = False,
        strict_model: bool = False,
        reject_response_format: bool = False,
    ) -> None:
        self.responder = responder or (lambda request: DEFAULT_REPLY)
        self.models = models
        self.require_key = require_key  # 401 (echoing the wrong key, as OpenAI does) unless it matches
        self.reject_logprobs = reject_logprobs  # 400 when logprobs are requested (some servers)
        self.strict_model = strict_model  # 404 for models not in `models`
        self.reject_response_format = reject_response_format  # 400 for JSON-schema output (older servers)
        self.requests: list[RecordedRequest] = []
        self._behaviours: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LoopbackVLM:
        handler = type("Handler", (_Handler,), {"loopback": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-vlm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------

    def enqueue(self, **behaviour: Any) -> None:
        """Queue a one-off behaviour for the next request, e.g. ``enqueue(status=429, retry_after="3")``."""
        with self._lock:
            self._behaviours.append(Behaviour(**behaviour))

    def _next_behaviour(self) -> Behaviour | None:
        with self._lock:
            return self._behaviours.popleft() if self._behaviours else None

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"chatcmpl-loopback{self._counter:06d}"


class _Handler(BaseHTTPRequestHandler):
    loopback: LoopbackVLM
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackVLM/1.0"
    # http.server writes headers and body separately; with Nagle's algorithm the body waits for the
    # client's delayed ACK (~40 ms a request). Model servers (uvicorn, Go's net/http) set TCP_NODELAY.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client went away (cancelled or timed out)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        record = RecordedRequest("GET", self.path, dict(self.headers), None)
        self.loopback._record(record)
        if self.path.rstrip("/") == "/v1/models":
            record.status = 200
            created = int(time.time())
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": created, "owned_by": "loopback"}
                        for m in self.loopback.models
                    ],
                },
            )
            return
        record.status = 404
        self._send_json(404, error_body(f"Unknown path {self.path}", code="unknown_url"))

    def do_POST(self) -> None:
        raw = self._read_body()
        # Recorded on arrival (status 0 while in flight), completed when the reply is sent.
        record = RecordedRequest("POST", self.path, dict(self.headers), None)
        self.loopback._record(record)
        if self.path.rstrip("/") != "/v1/chat/completions":
            record.status = 404
            self._send_json(404, error_body(f"Unknown path {self.path}", code="unknown_url"))
            return
        behaviour = self.loopback._next_behaviour() or Behaviour()
        try:
            self._check_auth()
            try:
                request = json.loads(raw)
            except ValueError as exc:
                message = f"We could not parse the JSON body of your request ({exc})."
                raise _RequestError(400, message) from None
            record.body = request
            _validate_chat_request(request, record, self.loopback)
        except _RequestError as exc:
            record.status, record.error = exc.status, exc.message
            self._send_json(exc.status, error_body(exc.message, exc.error_type, exc.param, exc.code))
            return

        if behaviour.delay_s and self.loopback._stopping.wait(behaviour.delay_s):
            self.close_connection = True
            return
        record.replied_at = time.monotonic()
        if behaviour.status is not None and behaviour.status >= 400:
            record.status = behaviour.status
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else {}
            kinds = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}
            kind = kinds.get(behaviour.status, "server_error")
            message = behaviour.error_message or f"Scripted error {behaviour.status}"
            self._send_json(behaviour.status, error_body(message, kind), headers=headers)
            return
        if behaviour.raw_body is not None:
            record.status = 200
            body = behaviour.raw_body
            if isinstance(body, str):
                body = body.encode("utf-8")
            self._send(200, body, content_type=behaviour.content_type)
            return

        if behaviour.reply_text is not None:
            reply = Reply(behaviour.reply_text, behaviour.p_anomalous, behaviour.finish_reason)
        else:
            produced = self.loopback.responder(request)
            reply = produced if isinstance(produced, Reply) else Reply(str(produced))
            if behaviour.p_anomalous is not None:
                reply.p_anomalous = behaviour.p_anomalous
        record.status = 200
        self._send_json(200, _completion(request, reply, self.loopback._next_id(), record))

    def _check_auth(self) -> None:
        expected = self.loopback.require_key
        if expected is None:
            return
        header = self.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if given != expected:
            # The real API echoes (part of) the wrong key; the client must not pass it on.
            raise _RequestError(
                401,
                f"Incorrect API key provided: {given}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )


def _validate_chat_request(request: Any, record: RecordedRequest, loopback: LoopbackVLM) -> None:
    """The checks the real endpoint makes, with its style of messages."""
    if not isinstance(request, dict):
        raise _RequestError(400, "The request body must be a JSON object.")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise _RequestError(400, "you must provide a model parameter", param="model")
    if loopback.strict_model and model not in loopback.models:
        raise _RequestError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    if request.get("stream"):
        raise _RequestError(400, "Streaming is not supported by the loopback server.", param="stream")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RequestError(400, "'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        _validate_message(message, i, record)
    _validate_sampling(request, loopback)


def _validate_message(message: Any, i: int, record: RecordedRequest) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _RequestError(400, f"Invalid type for '{where}': expected an object.", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise _RequestError(400, f"Invalid value for '{where}.role': {role!r}.", param=f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return
    if content is None and role == "assistant":
        return
    if not isinstance(content, list) or not content:
        raise _RequestError(
            400,
            f"Invalid type for '{where}.content': expected a string or an array of content parts.",
            param=f"{where}.content",
        )
    for j, part in enumerate(content):
        part_where = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _RequestError(400, f"Invalid type for '{part_where}': expected an object.", param=part_where)
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _RequestError(
                    400, f"Missing required parameter: '{part_where}.text'.", param=f"{part_where}.text"
                )
        elif kind == "image_url":
            if role != "user":
                raise _RequestError(
                    400, f"Image content parts are only allowed in user messages ('{part_where}').", param=part_where
                )
            _decode_image(part.get("image_url"), part_where, record)
        else:
            raise _RequestError(
                400,
                f"Invalid value: {kind!r}. Supported values are: 'text' and 'image_url'.",
                param=f"{part_where}.type",
            )


def _decode_image(image_url: Any, where: str, record: RecordedRequest) -> None:
    if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
        raise _RequestError(
            400, f"Missing required parameter: '{where}.image_url.url'.", param=f"{where}.image_url.url"
        )
    detail = image_url.get("detail", "auto")
    if detail not in ("auto", "low", "high"):
        raise _RequestError(400, f"Invalid value for '{where}.image_url.detail': {detail!r}.")
    match = _DATA_URL.match(image_url["url"])
    if not match:
        raise _RequestError(
            400,
            "Invalid image URL: expected a base64-encoded data URL with an image "
            "MIME type (e.g. 'data:image/png;base64,...').",
            param=f"{where}.image_url.url",
            code="invalid_image_url",
        )
    try:
        data = base64.b64decode(match.group(2), validate=True)
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size, fmt = image.size, image.format or "?"
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        raise _RequestError(
            400,
            "You uploaded an unsupported image. Please make sure your image is a valid PNG, JPEG, GIF or WebP.",
            param=where,
            code="invalid_image_format",
        ) from None
    if fmt not in ("PNG", "JPEG", "WEBP", "GIF"):
        raise _RequestError(400, f"Unsupported image format {fmt}.", param=where, code="invalid_image_format")
    record.image_sizes.append(size)
    record.image_formats.append(fmt)


def _validate_sampling(request: dict[str, Any], loopback: LoopbackVLM) -> None:
    temperature = request.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        raise _RequestError(
            400, f"Invalid 'temperature': {temperature!r}; expected a number from 0 to 2.", param="temperature"
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = request.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _RequestError(400, f"Invalid '{name}': {value!r}; expected an integer >= 1.", param=name)
    response_format = request.get("response_format")
    if response_format is not None:
        if loopback.reject_response_format:
            raise _RequestError(400, "response_format is not supported by this server.", param="response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise _RequestError(400, f"Invalid 'response_format.type': {kind!r}.", param="response_format")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if (
                not isinstance(spec, dict)
                or not isinstance(spec.get("name"), str)
                or not isinstance(spec.get("schema"), dict)
            ):
                raise _RequestError(
                    400, "'response_format.json_schema' needs a 'name' and a 'schema' object.", param="response_format"
                )
    logprobs = request.get("logprobs")
    top = request.get("top_logprobs")
    if logprobs and loopback.reject_logprobs:
        raise _RequestError(400, "logprobs is not supported for this model.", param="logprobs")
    if top is not None:
        if not isinstance(top, int) or not 0 <= top <= 20:
            raise _RequestError(400, f"Invalid 'top_logprobs': {top!r}; expected 0 to 20.", param="top_logprobs")
        if not logprobs:
            raise _RequestError(400, "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")


_TOKEN = re.compile(r"\s*[A-Za-z]+|\s*\d+|\s*[^\sA-Za-z\d]+|\s+")


def tokenize(text: str) -> list[str]:
    """A crude GPT-like tokenizer: words carry their leading space, punctuation runs are tokens."""
    tokens = _TOKEN.findall(text)
    assert "".join(tokens) == text
    return tokens


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _is_verdict_position(before: str) -> bool:
    """A JSON value after a key (``"anomalous": ``, ``"verdict": "``) or the answer's first word."""
    stripped = before.rstrip()
    return stripped.endswith(":") or re.search(r":\s*\"$", stripped) is not None or not stripped.strip("*#>-_`'\" ")


def _logprobs(text: str, p_anomalous: float | None, top_n: int) -> list[dict[str, Any]]:
    """Per-token log-probabilities; verdict tokens get their opposite as the runner-up."""
    content = []
    before = ""
    for token in tokenize(text):
        word = token.strip().lower()
        lead = token[: len(token) - len(token.lstrip())]
        if word in _OPPOSITE and _is_verdict_position(before):
            p_pos = p_anomalous if p_anomalous is not None else (0.9 if word in _POSITIVE else 0.1)
            p_pos = min(max(p_pos, 1e-6), 1 - 1e-6)
            p_chosen = p_pos if word in _POSITIVE else 1 - p_pos
            opposite = _OPPOSITE[word]
            if token.strip()[:1].isupper():
                opposite = opposite.capitalize()
            alternatives = [(token, math.log(p_chosen)), (lead + opposite, math.log(1 - p_chosen))]
        else:
            fillers = [(lead + "the", math.log(0.01)), (lead + "a", math.log(0.005))]
            alternatives = [(token, math.log(0.98))] + [(t, lp) for t, lp in fillers if t != token]
        before += token
        entry = _token_entry(token, alternatives[0][1])
        alternatives.sort(key=lambda pair: -pair[1])
        entry["top_logprobs"] = [_token_entry(t, lp) for t, lp in alternatives[:top_n]]
        content.append(entry)
    return content


def _completion(request: dict[str, Any], reply: Reply, completion_id: str, record: RecordedRequest) -> dict[str, Any]:
    """A response body in the exact OpenAI ``chat.completion`` shape."""
    prompt_tokens = 0
    for message in request["messages"]:
        content = message.get("content")
        texts = (
            [content]
            if isinstance(content, str)
            else [p.get("text", "") for p in content or [] if p.get("type") == "text"]
        )
        prompt_tokens += 4 + sum(len(tokenize(t)) for t in texts)
    prompt_tokens += 85 * len(record.image_sizes)
    completion_tokens = len(tokenize(reply.text))
    logprobs = None
    if request.get("logprobs"):
        top_n = int(request.get("top_logprobs") or 0)
        logprobs = {"content": _logprobs(reply.text, reply.p_anomalous, top_n), "refusal": None}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request["model"],
        "system_fingerprint": "fp_loopback",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []},
                "logprobs": logprobs,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@pytest.fixture(name="loopback_vlm")
def loopback_vlm() -> Iterator[LoopbackVLM]:
    """A started loopback server, stopped after the test.

    The explicit name lets a test module import it under another name
    (``from tests.loopback_vlm import loopback_vlm as _fixture``), so that test parameters called
    ``loopback_vlm`` do not shadow the import.
    """
    with LoopbackVLM() as server:
        yield server
