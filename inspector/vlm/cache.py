"""The response cache: an identical request (same endpoint, model, parameters, prompt and images) is
answered from the project instead of being sent again.

Re-running a batch after a crash or with one profile changed then costs only the cases whose
request changed. The key is computed from what determines the answer; the composed prompt's
sha256 already covers its system text, user text and every image's bytes. Only successful answers
are cached: an error is a fact about that moment, not about the request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from inspector.prompt import ComposedPrompt
from inspector.settings import EndpointSettings
from inspector.store.records import AnswerRecord
from inspector.vlm.client import VlmAnswer, VlmError


def request_params(endpoint: EndpointSettings) -> dict[str, Any]:
    """The request parameters that change the answer (not the timeout, not the key)."""
    return {
        "temperature": endpoint.temperature,
        "max_tokens": endpoint.max_tokens,
        "logprobs": endpoint.request_logprobs,
    }


def cache_key(endpoint: EndpointSettings, prompt: ComposedPrompt) -> str:
    material = {
        "endpoint": endpoint.base_url.strip().rstrip("/"),
        "model": endpoint.model.strip(),
        "params": request_params(endpoint),
        "prompt": prompt.sha256,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def answer_from_row(row: AnswerRecord) -> VlmAnswer:
    """A stored answer as a `VlmAnswer`, logprobs included, so it is parsed exactly as before."""
    response = row.response or {}
    logprobs = None
    choices = response.get("choices") if isinstance(response, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        lp = choices[0].get("logprobs")
        content = lp.get("content") if isinstance(lp, dict) else None
        logprobs = content if isinstance(content, list) else None
    return VlmAnswer(
        raw_text=row.raw_text,
        model=row.model,
        latency_s=0.0,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        logprobs=logprobs,
        response=response if isinstance(response, dict) else {},
    )


class CachedClient:
    """Stands in for `VlmClient` when the answer is cached: `ask` returns it without a request.

    `extraction` is the extraction turn stored with the cached answer, if there was one; without
    it the turn goes to `fallback` (a real client), or fails when there is none.
    """

    def __init__(
        self,
        answer: VlmAnswer,
        extraction: VlmAnswer | None = None,
        fallback: Any = None,
        source_answer_id: int | None = None,
    ) -> None:
        self.answer = answer
        self.extraction = extraction
        self.fallback = fallback
        self.source_answer_id = source_answer_id  # the stored answer this one copies

    @property
    def structured_output_enabled(self) -> bool:
        return bool(getattr(self.fallback, "structured_output_enabled", True))

    async def ask(self, prompt: ComposedPrompt, history: list[dict[str, Any]] | None = None) -> VlmAnswer:
        return self.answer

    async def extract(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> VlmAnswer:
        if self.extraction is not None:
            return self.extraction
        if self.fallback is None:
            raise VlmError(
                "bad_request",
                "The extraction turn of this cached answer is not stored, and no endpoint is available to ask it.",
            )
        return await self.fallback.extract(messages, schema)
