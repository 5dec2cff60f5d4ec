"""An asyncio client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LM Studio).

Why asyncio: a GUI worker thread runs the client in its own event loop and cancels an in-flight
request by cancelling its task; the HTTP connection is closed at once and the window never
waits for a model it no longer needs. The SDK's own retries are off (``max_retries=0``): whether
and when to retry is decided by the caller, which sees `VlmError.kind`, `retryable` and
`retry_after`.

The raw response body is read and checked here rather than through the SDK's models, so that the
full response can be stored as it arrived and a malformed body becomes a clear `bad_response`
error instead of a half-filled object.

Secrets: the API key goes to the SDK and nowhere else. Error messages are written by us (the
server's own text is passed on only for 400-type errors, redacted), exceptions are raised
``from None`` so no SDK exception carrying request headers hangs off them, and `repr` shows no key.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

import openai

from inspector.prompt import ComposedPrompt
from inspector.settings import EndpointSettings, redact

PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the SDK insists on one
TOP_LOGPROBS = 5
RETRYABLE_KINDS = frozenset({"timeout", "rate_limited", "server_error", "connection"})
SCHEMA_FORMS = ("json_schema", "json_object")  # OpenAI / vLLM / LM Studio, then llama.cpp's server


@dataclass
class VlmAnswer:
    """One answer as it arrived, with usage for the record."""

    raw_text: str
    model: str
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    logprobs: list[dict[str, Any]] | None
    response: dict[str, Any]  # the full response body, JSON-able
    finish_reason: str | None = None
    # The parameters actually sent (model, temperature, token limit, logprobs), after any
    # adaptation to what the server accepts: for the record, next to the endpoint settings.
    sent_params: dict[str, Any] = field(default_factory=dict)

    def assistant_message(self) -> dict[str, Any]:
        """The answer as a chat message, to extend the history for a follow-up question."""
        return {"role": "assistant", "content": self.raw_text}


# What the parser reads (inspector/vlm/answers.py): the verdict, how sure, why, and where (boxes on
# the images, mark numbers, ranges of samples or frames). Only the first three are required, so a
# server that enforces the schema still lets the model leave out what does not apply.
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "anomalous": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
        "regions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "view": {"type": "string"},
                    "box": {"type": "array", "items": {"type": "number"}},
                    "label": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "marks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"mark": {"type": "integer"}, "reason": {"type": "string"}},
                "required": ["mark"],
            },
        },
        "ranges": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "string"]}}},
        "frames": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
    "required": ["anomalous", "confidence", "reason"],
}


class VlmError(Exception):
    """A failed request, with an operator-facing message that never contains the API key.

    kind: "timeout" | "rate_limited" | "server_error" | "auth" | "connection" | "bad_request"
    | "bad_response".
    """

    def __init__(
        self, kind: str, user_message: str, retry_after: float | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(user_message)
        self.kind = kind
        self.user_message = user_message
        self.retry_after = retry_after
        self.status_code = status_code

    @property
    def retryable(self) -> bool:
        """Whether trying again later may help (not for auth, bad requests or quota)."""
        return self.kind in RETRYABLE_KINDS and not (
            self.kind == "rate_limited" and self.retry_after is None and "quota" in self.user_message
        )

    def __repr__(self) -> str:
        return (
            f"VlmError(kind={self.kind!r}, status_code={self.status_code!r}, "
            f"retry_after={self.retry_after!r}, user_message={self.user_message!r})"
        )


_TLS_CONTEXT: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    """Certificate verification, built once per session and shared by every client.

    Loading the CA bundle takes 40-80 ms in C code that holds the GIL; httpx would do it for every
    new client (each inspection, each batch, each follow-up), stalling the window each time. Also
    used for plain-http endpoints: a redirect to https must still be verified.
    """
    global _TLS_CONTEXT
    with _TLS_LOCK:
        if _TLS_CONTEXT is None:
            import httpx2  # the openai SDK's HTTP library: the same verification it would set up itself

            _TLS_CONTEXT = httpx2.create_ssl_context()
        return _TLS_CONTEXT


def image_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def user_message(prompt: ComposedPrompt) -> dict[str, Any]:
    """The user turn of a prompt: the text, then each image after its caption."""
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt.text}]
    for image in prompt.images:
        content.append({"type": "text", "text": image.caption or image.label})
        content.append({"type": "image_url", "image_url": {"url": image_data_url(image.png)}})
    return {"role": "user", "content": content}


def prompt_messages(prompt: ComposedPrompt) -> list[dict[str, Any]]:
    """A prompt as the first messages of a conversation: the system text, then the user turn."""
    return [{"role": "system", "content": prompt.system}, user_message(prompt)]


class VlmClient:
    """Sends composed prompts to one endpoint. Create and use it inside one event loop."""

    def __init__(self, endpoint: EndpointSettings, api_key: str | None = None) -> None:
        if not endpoint.base_url.strip():
            raise ValueError("No VLM endpoint is configured (the offline detector is used instead)")
        self.endpoint = endpoint
        self._secrets = [api_key] if api_key else []
        self._use_logprobs = endpoint.request_logprobs
        self._use_max_completion_tokens = False
        self._send_temperature = True
        # how the JSON schema is sent: OpenAI's "json_schema" form, llama.cpp's "json_object" with a
        # schema, or not at all; a server that refuses one form gets the next, remembered per client
        self._schema_forms = list(SCHEMA_FORMS) if endpoint.structured_output else []
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_KEY,
            base_url=endpoint.base_url.strip(),
            timeout=endpoint.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=_tls_context()),
        )

    def __repr__(self) -> str:
        return f"VlmClient(base_url={self.endpoint.base_url!r}, model={self.endpoint.model!r})"

    @property
    def logprobs_enabled(self) -> bool:
        """False once the server has rejected logprobs (remembered for this client's lifetime)."""
        return self._use_logprobs

    # -- messages ----------------------------------------------------------------------------

    def build_messages(self, prompt: ComposedPrompt) -> list[dict[str, Any]]:
        """System message, then one user message: the text, then each image after its caption."""
        return prompt_messages(prompt)

    @staticmethod
    def user_message(prompt: ComposedPrompt) -> dict[str, Any]:
        return user_message(prompt)

    # -- requests ----------------------------------------------------------------------------

    async def ask(self, prompt: ComposedPrompt, history: list[dict[str, Any]] | None = None) -> VlmAnswer:
        """Send a prompt and return the answer, or raise `VlmError`.

        With `history` (earlier messages, system message included, assistant answers appended),
        the prompt becomes the next user turn of that conversation (a follow-up question) and
        its system text is not repeated.
        """
        if history:
            messages = [*history, self.user_message(prompt)]
        else:
            messages = self.build_messages(prompt)
        # the verdict as JSON through the server's structured output, when the prompt asks for JSON
        return await self._complete(messages, VERDICT_SCHEMA if prompt.switches.answer_format else None)

    async def chat(self, messages: list[dict[str, Any]]) -> VlmAnswer:
        """Send a whole conversation (a follow-up question after the stored prompt and answers)."""
        return await self._complete(messages)

    @property
    def structured_output_enabled(self) -> bool:
        """Whether requests go out with a JSON schema (False when off, or once the server refused it)."""
        return bool(self._schema_forms)

    async def extract(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> VlmAnswer:
        """The verdict-extraction turn (`inspector.vlm.extraction`): the conversation so far and a
        question asked through `schema` where the server takes one."""
        return await self._complete(messages, schema, schema_name="anomaly_verdict_restated")

    async def _complete(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, schema_name: str = "anomaly_verdict"
    ) -> VlmAnswer:
        # A 400 may be a server refusing an optional parameter (logprobs, max_tokens, temperature):
        # adapt once per parameter and remember it; any other 400 is reported. Dropping logprobs
        # on an unspecific 400 is remembered only if the request then goes through.
        logprobs_dropped_on_guess = False
        while True:
            kwargs = self._request_kwargs(messages, schema, schema_name)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):
                    raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
                    body = raw.content
            except openai.BadRequestError as exc:
                adapted = self._adapt_to(exc, kwargs)
                if adapted:
                    logprobs_dropped_on_guess |= adapted == "logprobs-guess"
                    continue
                if logprobs_dropped_on_guess:
                    self._use_logprobs = True  # the 400 was about something else
                raise self._error_from(exc) from None
            except openai.APIStatusError as exc:
                # llama.cpp's server (llama-cpp-python) answers OpenAI's json_schema form with a 500 or
                # 422 that names response_format: a request error in disguise, which no retry fixes
                if exc.status_code in (422, 500) and "response_format" in kwargs and self._names_format(exc):
                    self._schema_forms.pop(0)
                    continue
                raise self._error_from(exc) from None
            except (TimeoutError, openai.APIError) as exc:
                raise self._error_from(exc) from None
            latency = time.perf_counter() - started
            answer = self._answer_from(body, latency)
            answer.sent_params = {k: v for k, v in kwargs.items() if k != "messages"}
            if "response_format" in answer.sent_params:  # the record names it; the schema is in the code
                answer.sent_params["response_format"] = kwargs["response_format"]["type"]
            return answer

    def _request_kwargs(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, schema_name: str = "anomaly_verdict"
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.endpoint.model, "messages": messages}
        if schema is not None and self._schema_forms:
            if self._schema_forms[0] == "json_schema":
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema},
                }
            else:
                kwargs["response_format"] = {"type": "json_object", "schema": schema}
        if self._send_temperature:
            kwargs["temperature"] = self.endpoint.temperature
        if self._use_max_completion_tokens:
            kwargs["max_completion_tokens"] = self.endpoint.max_tokens
        else:
            kwargs["max_tokens"] = self.endpoint.max_tokens
        if self._use_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = TOP_LOGPROBS
        return kwargs

    def _adapt_to(self, exc: openai.BadRequestError, kwargs: dict[str, Any]) -> str:
        """Drop or rename the parameter a 400 complains about; "" when there is nothing to adapt."""
        text = f"{exc.param or ''} {_server_message(exc)}".lower()
        if "response_format" in kwargs and ("response_format" in text or "json_schema" in text):
            self._schema_forms.pop(0)  # the next form, or free text; the parser reads it
            return "response_format"
        if "max_tokens" in kwargs and "max_completion_tokens" in text:
            self._use_max_completion_tokens = True
            return "max_completion_tokens"
        if "temperature" in kwargs and "temperature" in text:
            self._send_temperature = False
            return "temperature"
        if "logprobs" in kwargs:
            # Some servers reject logprobs with a 400 that does not name them: retry once without.
            self._use_logprobs = False
            return "logprobs" if "logprob" in text else "logprobs-guess"
        return ""

    @staticmethod
    def _names_format(exc: openai.APIStatusError) -> bool:
        """Whether the error's own message (not an echo of the whole request) is about response_format."""
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("detail") or body.get("error") or ""
        text = f"{getattr(exc, 'param', None) or ''} {_server_message(exc)} {detail}"[:2000].lower()
        return "response_format" in text or "json_schema" in text

    def _answer_from(self, body: bytes, latency: float) -> VlmAnswer:
        try:
            response = json.loads(body)
        except ValueError:
            raise self._bad_response("the endpoint's reply is not valid JSON") from None
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._bad_response("the endpoint's reply has no answer (no 'choices')")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise self._bad_response("the endpoint's reply has no message")
        text = _message_text(message.get("content"))
        finish_reason = choice.get("finish_reason")
        if not text.strip():
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal.strip():
                text = refusal  # stored and then read as UNPARSED by the answer parser
            elif finish_reason == "length":
                raise self._bad_response(
                    f"the model used all {self.endpoint.max_tokens} answer tokens "
                    "before answering; raise the token limit in Settings"
                )
            else:
                raise self._bad_response("the model returned an empty answer")
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        logprobs = choice.get("logprobs")
        tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
        return VlmAnswer(
            raw_text=text,
            model=str(response.get("model") or self.endpoint.model),
            latency_s=latency,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            logprobs=tokens if isinstance(tokens, list) else None,
            response=response,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )

    async def list_models(self) -> list[str]:
        """Model ids the endpoint serves; for a "test connection" button. Raises `VlmError`."""
        try:
            async with asyncio.timeout(self.endpoint.timeout_s):
                page = await self._client.models.list()
        except (TimeoutError, openai.APIError) as exc:
            raise self._error_from(exc) from None
        return [m.id for m in page.data]

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- errors ------------------------------------------------------------------------------

    def _bad_response(self, what: str) -> VlmError:
        return VlmError("bad_response", self._clean(f"Unusable answer from {self._where()}: {what}."))

    def _where(self) -> str:
        parts = urlsplit(self.endpoint.base_url)
        return parts.netloc or self.endpoint.base_url

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def _error_from(self, exc: BaseException) -> VlmError:
        """Map an SDK (or asyncio) exception to a `VlmError` with an operator-facing message."""
        where = self._where()
        model = self.endpoint.model
        timeout = self.endpoint.timeout_s
        if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
            return VlmError(
                "timeout",
                f"The model at {where} did not answer within {timeout:g} s. "
                "Try again, or raise the timeout in Settings.",
            )
        if isinstance(exc, openai.APIConnectionError):
            return VlmError(
                "connection",
                f"Could not connect to {where}. Check that the model server is "
                "running and that the address in Settings is right.",
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retry_after = _retry_after(exc.response.headers)
            server_says = self._clean(_short(_server_message(exc)))
            if isinstance(exc, openai.RateLimitError) or status == 429:
                if exc.code == "insufficient_quota":
                    return VlmError(
                        "rate_limited",
                        f"The account behind {where} has run out of quota (HTTP 429). Check its billing.",
                        None,
                        status,
                    )
                wait = f" Retry after {retry_after:g} s." if retry_after is not None else ""
                return VlmError(
                    "rate_limited",
                    f"The endpoint at {where} is limiting the request rate (HTTP 429).{wait}",
                    retry_after,
                    status,
                )
            if status in (401, 403):
                # The server's text is not passed on: it may quote (part of) the key.
                return VlmError(
                    "auth",
                    f"The endpoint at {where} refused the API key (HTTP {status}). "
                    "Check the key for this endpoint in Settings.",
                    None,
                    status,
                )
            if status == 404:
                return VlmError(
                    "bad_request",
                    f"The endpoint at {where} does not serve model {model!r}, "
                    "or the address is not an OpenAI-compatible /v1 endpoint "
                    "(HTTP 404).",
                    None,
                    status,
                )
            if status >= 500:
                return VlmError(
                    "server_error",
                    f"The model server at {where} failed (HTTP {status}). Try again later.",
                    retry_after,
                    status,
                )
            return VlmError(
                "bad_request",
                f"The endpoint at {where} rejected the request (HTTP {status}): {server_says}",
                None,
                status,
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return self._bad_response("the reply does not have the expected form")
        return VlmError("bad_response", self._clean(f"Unexpected reply from {where} ({type(exc).__name__})."))


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own error text (``error.message``), without the SDK's "Error code" prefix."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    return exc.message


def _message_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list (some servers send parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            return max(0.0, float(value) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
